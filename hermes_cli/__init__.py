"""hermes-cli: terminal chat, one-shot piping and batch runs for ChatML GGUF models.

Nothing is imported here on purpose: `hermes --help` must not pay for llama_cpp, rich or
huggingface_hub (tests/test_cli.py checks it).
"""

__version__ = "0.1.0"
