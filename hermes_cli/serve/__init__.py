"""`hermes serve`'s front end: the OpenAI-compatible HTTP API over the turn queue."""
