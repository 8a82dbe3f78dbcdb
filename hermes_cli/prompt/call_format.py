"""Which key a Hermes tool call writes first: a property of the model.

Hermes 2 Pro and Hermes 2 Θ (May 2024) were trained on calls written arguments first:
their model cards give the FunctionCall schema as `{"properties": {"arguments": …,
"name": …}, "required": ["arguments", "name"]}` and show the model's own output as
`{"arguments": {"symbol": "TSLA"}, "name": "get_stock_fundamentals"}`. The
Hermes-Function-Calling prompt switched to name first in July 2024, after they were
trained; Hermes 3, Qwen2.5 and later templates write name first. Forcing a form the
model was not trained on, on every call, is what the grammar must not do: the prompt and
the call grammar follow the model's order (modes/tools/protocol.py), and the parser
accepts either (prompt/tool_calls.py).

Chosen from the GGUF (its `general.name`, else its file name; Θ's GGUF files are named
`Hermes-2-Pro-Llama-3-Instruct-Merged-DPO-…`) or a served model's name; overridden by
`--call-format` or the config's `call_format`.
"""

from __future__ import annotations

import re

NAME_FIRST = "name-first"
ARGUMENTS_FIRST = "arguments-first"
FORMATS = (NAME_FIRST, ARGUMENTS_FIRST)
AUTO = "auto"

# Hermes 2 Pro (Llama-3 and Mistral bases) and Hermes 2 Θ, however the name is spelled.
_ARGUMENTS_FIRST_MODELS = re.compile(r"hermes[\s_.-]*2[\s_.-]*(pro|theta|θ)", re.IGNORECASE)


def detect(*names: str | None) -> str:
    """The call format of a model known by these names (GGUF name, file name, served name)."""
    return ARGUMENTS_FIRST if any(n and _ARGUMENTS_FIRST_MODELS.search(n) for n in names) else NAME_FIRST


def choose(override: str | None, *names: str | None) -> tuple[str, str]:
    """(format, why): the override unless it is None or "auto", else what `detect` finds."""
    if override not in (None, AUTO):
        assert override in FORMATS, override
        return override, "set by --call-format or the config"
    found = detect(*names)
    return found, ("detected: a Hermes 2 Pro / Θ model" if found == ARGUMENTS_FIRST else "the default")


def decided(call_format: str) -> str:
    """The format to write: an undecided "auto" (no backend has said) is name-first."""
    return call_format if call_format in FORMATS else NAME_FIRST


def gguf_names(metadata: dict[str, object], file_name: str) -> tuple[str | None, str]:
    """The names a GGUF's format is detected from: its `general.name`, then its file name."""
    name = metadata.get("general.name")
    return (name if isinstance(name, str) else None, file_name)


def keys(call_format: str) -> tuple[str, str]:
    """The two keys of a call, in the order the model writes them."""
    return ("arguments", "name") if call_format == ARGUMENTS_FIRST else ("name", "arguments")
