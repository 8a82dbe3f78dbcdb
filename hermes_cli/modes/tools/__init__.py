"""Hermes function calling: tools from the user's functions, the exact prompt and call
format the model was trained on, running calls safely, and the call -> result loop."""
