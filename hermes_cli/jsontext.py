"""Reading JSON that came from elsewhere (batch lines, saved sessions): one line about
what is wrong, never an exception from deep inside a later step.

`json.loads` accepts what Unicode text cannot hold: a lone surrogate (`"\\ud83d"`)
parses, then fails much later as a UnicodeEncodeError when it is tokenized or written
(a batch then stopped at that line on every resume); 100,000 nested brackets raise
RecursionError. `loads` refuses both, and numbers too large to be a float.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # deeper than any batch line or session file hermes writes or reads
SCHEMA_DEPTH = 200  # JSON Schemas nest two levels per object (properties, then the key)


class BadJson(ValueError):
    """The text is not JSON hermes can use; the message ("not valid JSON: …", "not
    usable JSON: …") says why, in one line, and reads after "… is"."""


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse and check: raise BadJson for invalid JSON, nesting over `max_depth`, or a
    string (key or value) that is not Unicode text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadJson(f"not valid JSON: {describe(e)}") from None
    except RecursionError:
        raise BadJson(f"not usable JSON: nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as e:
        raise BadJson(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    check(value, max_depth=max_depth)
    return value


def describe(e: json.JSONDecodeError) -> str:
    """Where and why, once: some of json's messages end in "at" already ("Invalid
    control character at"), which made "… at at column 12"."""
    msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg
    return f"{msg} at line {e.lineno} column {e.colno}"


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise BadJson if `value` nests over `max_depth` or holds a lone surrogate
    (iterative: a hostile depth cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _text(node)
        elif isinstance(node, (dict, list)):
            if depth >= max_depth:
                raise BadJson(f"not usable JSON: nested deeper than {max_depth} levels")
            if isinstance(node, dict):
                for key, item in node.items():
                    _text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)


def _text(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadJson(f"not usable JSON: a string holds {s[e.start]!r}, a lone surrogate, "
                      "which is not Unicode text") from None
