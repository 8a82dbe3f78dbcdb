"""hermes-cli: terminal chat, one-shot piping and batch runs for Hermes 2 Θ and any GGUF chat model.

Nothing is imported here on purpose: `hermes --help` must not pay for llama_cpp, rich or
huggingface_hub (tests/test_cli.py checks it).
"""

__version__ = "0.1.0"
