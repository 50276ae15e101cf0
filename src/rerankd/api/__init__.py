"""HTTP dialects: each module converts one wire format to and from ``rerankd.types``.

``routing.py`` has the table of every path and the dialect that answers it. A new dialect is one
module (request model, ``to_internal``, ``render``, ``error_body``, ``router``) plus its line there.
"""
