"""The command line: ``rerankd serve|models`` (``cli``), ``keys|usage|db`` (``manage``), ``batch`` and
``eval``. The top floor: commands may import anything below them, and nothing imports them."""
