"""Local backends: models that run in this process. The interface is in ``base.py``, each kind's
settings in ``specs.py``, one module per kind; ``rerankd.kinds`` is the table that ties them together.
"""
