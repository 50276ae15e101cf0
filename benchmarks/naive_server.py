"""The naive rerank server the benchmarks measure rerankd against (``rerankd_support.bench.naive_server``).

Run: ``python benchmarks/naive_server.py --model-dir DIR --port 8001`` (binds 127.0.0.1).
"""

from __future__ import annotations

from rerankd_support.bench.naive_server import main

if __name__ == "__main__":
    main()
