"""Served engines (vLLM, llama-server, any OpenAI-compatible API) as reply backends:
the endpoint client and its errors (client), retries over one or several endpoints
(pool), and the backend that streams a reply (backend)."""
