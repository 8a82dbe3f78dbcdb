"""Which MCP servers a command gets: its `--mcp` options, then the config file's
`[mcp.servers.*]` (unless `--no-mcp`), as one toolset (mcp_servers/toolset.py)."""

from __future__ import annotations

from collections.abc import Callable

from hermes_cli.core.config import Config
from hermes_cli.mcp_servers.spec import spec_from_option
from hermes_cli.mcp_servers.toolset import McpToolset


def toolset_for(options: list[str], config: Config, *, use_config: bool = True,
                warn: Callable[[str], None]) -> McpToolset | None:
    """The servers to start (not started yet), or None when there are none."""
    specs = [spec_from_option(text) for text in options]
    if use_config:
        given = {s.name for s in specs}
        specs += [s for name, s in config.mcp.items() if name not in given]
    return McpToolset(specs, warn=warn) if specs else None
