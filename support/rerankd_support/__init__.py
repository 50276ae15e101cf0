"""Test and benchmark support for rerankd, kept out of the runtime package (``rerankd-support``).

:mod:`.models` generates random-weight models of real architectures (tokenizers from :mod:`.vocab` and
:mod:`.bpe`, trained on :mod:`.corpus`); :mod:`.harness` runs real servers on free ports for tests and
benchmarks; :mod:`.postgres` runs a throw-away PostgreSQL server for the store's tests;
:mod:`.cranfield` turns the Cranfield collection into rerank requests; :mod:`.paths` says where the
repository's data and caches are; :mod:`.bench` is the benchmarks' machinery. Installed in editable mode
by the Makefile (``pip install -e ./support``); never imported by ``rerankd`` itself.
"""
