"""``rerankd eval``: measure ranking quality on a test collection, and tune hybrid models.

``collection`` reads BEIR, TREC and Cranfield collections (and builds a long-document variant),
``first_stage`` gives the candidates (BM25 or a run file), ``runner`` reranks them through the server's
own service in this process and tunes hybrids, ``measures`` computes the metrics (ir-measures) and
paired tests (scipy), ``report`` writes the table, CSV and plots, ``cli`` is the command. Needs the
``eval`` extra: ``pip install 'rerankd[eval]'``.
"""
