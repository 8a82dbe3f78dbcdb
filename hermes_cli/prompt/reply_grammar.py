"""A reply's grammar, with what a served engine needs to know of it.

The engine takes a Grammar (engine/params.py: llguidance's spec). A served engine cannot
take that grammar; what it can be told is a JSON Schema for `response_format`, and the
text around the JSON it writes (a Hermes tool call's tags), which this type adds. The
reply logics (modes/) build these; a local backend hands the engine the Grammar part,
a served one reads the rest. Here, below both, so the engine's type carries nothing of
the served engines'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hermes_cli.engine.params import Grammar


@dataclass(frozen=True)
class ReplyGrammar(Grammar):
    """`server_schema`: the JSON Schema a server can enforce (None: it writes freely,
    and the reply is checked here); `server_wrap`: the text before and after it."""

    server_schema: dict[str, Any] | None = None
    server_wrap: tuple[str, str] = ("", "")
