"""rerankd on Ray (the ``ray`` extra, imported only when asked for): ``serve`` runs the HTTP app as Ray
Serve replicas (``rerankd serve --ray``; ``options`` reads its flags without importing Ray), ``data`` runs
``rerankd batch`` jobs on Ray Data actors (``--engine ray``)."""
