"""Text from a model, a tool or a file, made safe to show on a terminal.

A reply can hold terminal escape sequences (ESC [ 2 J clears the screen; OSC 52 writes
the clipboard; others retitle the window or hide text). On a terminal every control
character but newline and tab is shown in caret notation (ESC as `^[`, DEL as `^?`;
C1 controls as `<U+009B>`), never interpreted. Piped output is not changed: `hermes ask`
stays byte-exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def _caret(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """`text` with its control characters (but newline and tab) made visible."""
    return _CONTROLS.sub(_caret, text) if _CONTROLS.search(text) else text


def shown_on(out: Any) -> Callable[[str], str]:
    """How text from a model is written to `out`: made visible on a terminal, unchanged
    when piped (so `ask` and `history` stay byte-exact there)."""
    isatty = getattr(out, "isatty", None)
    return visible if callable(isatty) and isatty() else _unchanged


def _unchanged(text: str) -> str:
    return text
