"""Tools from MCP servers (the Model Context Protocol), through the official `mcp` SDK:
each server is started (stdio) or reached (Streamable HTTP), its tools are offered to
the model in the Hermes format beside the user's own `--tools`, and calls are forwarded.

- `loop.py`: the SDK is async; hermes is not. One private event loop on a thread runs
  every connection; the rest of hermes calls it with a timeout.
- `server.py`: one server: start, list tools, call, stop, its state and its last error.
- `toolset.py`: every server of a command: names made unique (`server__tool`), the
  tools as hermes Tools, `/mcp` status, restart, and stopping them all at exit.
"""
