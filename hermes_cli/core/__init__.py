"""The core: conversations and saved sessions, a chat session without a terminal, loading
a model for a command, and batch runs. It imports no typer, rich or prompt_toolkit."""
