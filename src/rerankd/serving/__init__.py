"""Serving: one rerank call from a validated request to a ranked answer.

``runtime`` builds the parts from a config (the one way); ``service`` runs a call (admission through the
gateway's meter, the model chain with retries and fallbacks within the deadline, activation, top_n,
usage); ``pool`` holds the configured models and their life cycle; ``scheduler`` batches the work of
local models (tokenizer thread, one worker per model, packing by ``batching``, an output ``cache``);
``hybrid`` fuses configured models; ``reranker`` is the Python API on the same parts; ``metrics`` the
Prometheus metrics.
"""
