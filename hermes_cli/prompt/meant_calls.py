"""A Hermes tool call the model closed in the wrong place, read as it evidently meant it.

A weak model sometimes ends its call without closing the string it is writing:
`{"name": "calculate", "arguments": {"expression": "17*23}}</tool_call>Here, we…`. The
call grammar lets a string hold anything, so the "call" was valid and the tool ran on
garbage (issue 31). The text shows what was meant: the closing quote the model skipped
belongs before the brackets it wrote to close the call, and what follows the tag is not
the call. `tag_inside` finds such a string in parsed arguments; `meant_arguments` reads
them as meant; `meant_body` does the same for a call whose generation was ended at that
tag (engine/slot.py, `Grammar.abandon`), before its JSON was finished. Where the text does
not show that (no value, or no bracket, before the tag) nothing is guessed: the call stays
malformed and is asked for again (modes/tools/loop.py).
"""

from __future__ import annotations

from typing import Any

from hermes_cli.prompt.call_tags import CLOSE, OPEN


def tag_inside(arguments: Any) -> str | None:
    """The call tag an argument string holds (`</tool_call>`, `<tool_call>`), if any.

    The call grammar lets a string hold anything, so a model that meant to end its call
    without closing the string (SmolLM2: `"expression": "17*23}}</tool_call>Here, we…"`)
    wrote a "valid" call, and the tool ran on garbage. Such a call is read as the model
    meant it where it can be (`meant_arguments`); otherwise it is the model's call closed
    in the wrong place, and the tools loop asks for it again (modes/tools/loop.py)."""
    stack = [arguments]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            for tag in (CLOSE, OPEN):
                if tag in value:
                    return tag
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


_CLOSERS = "}] \t\r\n"


def meant_arguments(arguments: dict[str, Any]) -> dict[str, Any] | None:
    """The arguments as the model meant them when one of its strings holds the call's own
    tag after the brackets that would have closed the call: `{"expression": "17*23}}
    </tool_call>Here, we…"}` → `{"expression": "17*23"}`. The model skipped the closing
    quote, wrote the call's end, and went on writing an answer inside the string (the
    grammar lets a string hold anything); the quote it skipped belongs before those
    brackets, and what follows them is not the call. Keys after that string were written
    after the model thought the call ended, and are dropped. None when no string holds a
    tag, or the text before the tag is not a value and then closing brackets (no evident
    end: the call stays malformed and is asked for again)."""
    cut = _cut_at_tag(arguments)
    return cut[0] if cut is not None and cut[1] else None


def _value_before_tag(text: str) -> str | None:
    """What `text` holds before its first call tag, the brackets the model wrote to close
    the call dropped; "" when there is no tag; None when the tag has no value and
    bracket before it (no evident end)."""
    found = [i for i in (text.find(CLOSE), text.find(OPEN)) if i >= 0]
    if not found:
        return ""
    before = text[:min(found)].rstrip()
    meant = before.rstrip(_CLOSERS)
    return meant if meant and meant != before else None  # a value, then its closers


def _cut_at_tag(value: Any) -> tuple[Any, bool] | None:
    """(value cut at the first tag in document order, whether a tag was found); None
    when the tag found has no closing bracket before it."""
    if isinstance(value, str):
        meant = _value_before_tag(value)
        return None if meant is None else (value, False) if meant == "" else (meant, True)
    if isinstance(value, (dict, list)):
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        kept: list[tuple[Any, Any]] = []
        for key, item in pairs:
            cut = _cut_at_tag(item)
            if cut is None:
                return None
            kept.append((key, cut[0]))
            if cut[1]:
                return (dict(kept) if isinstance(value, dict) else [v for _key, v in kept]), True
    return value, False


def meant_body(body: str) -> str | None:
    """An unfinished call's JSON as the model meant it, when it ended inside an argument
    string by writing the call's tag after the brackets that were to close it (the
    generation is ended there: engine/slot.py, `Grammar.abandon`): the string is cut
    before those brackets and closed, then every open bracket; None when that is not what
    the text shows."""
    meant = _value_before_tag(body)
    if not meant:
        return None
    opened: list[str] = []
    in_string = escaped = False
    for ch in meant:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            opened.append("}" if ch == "{" else "]")
        elif ch in "}]" and opened:
            opened.pop()
    if not in_string or escaped:
        return None  # the tag was not inside a string: not this case
    return meant + '"' + "".join(reversed(opened))
