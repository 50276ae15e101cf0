"""Tests that run real rerank clients from PyPI against a real `rerankd serve` (see conftest.py, venvs.py)."""
