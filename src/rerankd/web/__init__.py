"""The pages rerankd serves to people, from files inside the package (no CDN, no build step): the
playground (``/playground``: try models side by side) and the API docs (``/docs``, ``/redoc``).

``static/`` holds the playground as hand-written HTML, CSS and JavaScript; it talks only to the server
that served it (``GET /v1/models``, ``POST /v1/rerank``).
"""

from __future__ import annotations

from rerankd.web.pages import include_pages

__all__ = ["include_pages"]
