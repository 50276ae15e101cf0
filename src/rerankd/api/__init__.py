"""HTTP dialects: each module converts one wire format to and from ``rerankd.types``.

A new dialect is one module with a ``router`` plus one line in ``ROUTERS``.
"""

from __future__ import annotations

from fastapi import APIRouter

from rerankd.api import common, seed

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (common.router, seed.router)
