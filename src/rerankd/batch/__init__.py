"""``rerankd batch``: rerank the jobs of a JSONL file into a JSONL file, in one process or on Ray Data.

``jobs`` (the file formats and the input check), ``output`` (resume and input order), ``engine`` (many
jobs in flight through one Reranker), ``run`` (one run, local engine), ``ray_data`` (the Ray engine,
imported only when asked for), ``progress`` (the bar and the summary), ``cli`` (the command).
"""
