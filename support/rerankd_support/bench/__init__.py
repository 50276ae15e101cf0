"""The benchmarks' machinery, shared by the scripts in ``benchmarks/`` (which keep only their command lines).

:mod:`.options` the options every server benchmark takes; :mod:`.servers` the servers under test and
their generated models; :mod:`.naive_server` the baseline server; :mod:`.load` closed-loop HTTP load and
its statistics; :mod:`.tables` Markdown tables and the machine's description. For ``bench_perf.py``:
:mod:`.peak` the machine's matmul peak, :mod:`.workloads` requests and their FLOPs, :mod:`.infinity`
Infinity's environment and server, :mod:`.measure` the cells, sweeps and their run, :mod:`.report` the
Markdown report and the plots.
"""
