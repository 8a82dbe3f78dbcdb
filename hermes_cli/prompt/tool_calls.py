"""Where a Hermes tool call begins and ends in a reply's text.

A call is `<tool_call>`, a JSON object, then `</tool_call>`. It ends where its JSON ends
(the same place the call grammar says it is complete), not at the first `</tool_call>`
the text contains: the model may write that inside a JSON string (an argument that
quotes the tag, or `}}</tool_call>` in an expression), and there it is only string
content. Cutting at the textual tag was the defect behind malformed calls on real
weights (issue 19).

`CallScanner` reads text incrementally, in O(1) amortised work per character (a regex
jumps to the next quote, backslash or bracket), so the stream (modes/tools/stream), the
final parse (`parse_tool_calls`) and the served engine's wire messages (served/backend)
all use it: one definition of a call's extent. It lives in prompt/ because the Hermes
call text is part of the prompt format, below both modes/ and served/.

A block whose body does not start with `{` (nothing, or prose) has no object to follow;
it ends at the textual closing tag, and the parser reports what it is.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from hermes_cli.prompt.call_format import keys
from hermes_cli.prompt.call_tags import CLOSE, OPEN, RESPONSE_CLOSE, RESPONSE_OPEN
from hermes_cli.prompt.meant_calls import meant_arguments, meant_body, tag_inside

# Inside a string: its closing quote or a backslash. Outside: a quote or a bracket. Single
# quotes open strings too, for served models that write Python dicts (never valid JSON
# outside a string, so JSON is read the same).
_IN_STRING = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]")}
_IN_JSON = re.compile(r"""[{}\[\]"']""")


@dataclass(frozen=True)
class Text:
    """Text outside any call."""

    text: str


@dataclass(frozen=True)
class Block:
    """One call's body (what stands between the tags, stripped). `closed` is False for
    a block the text ended inside (cut, or a JSON object never finished)."""

    body: str
    closed: bool = True


Segment = Text | Block


def partial_length(text: str, tag: str) -> int:
    """How many trailing characters of `text` could begin `tag`."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class CallScanner:
    """Splits text, fed in pieces, into `Text` and `Block` segments.

    States: "text" (outside, holding a tail that may begin the tag), "head" (after the
    tag, before the body), "json" (inside the body's object), "tail" (the object ended:
    whitespace and the closing tag), "raw" (a body that is not JSON: up to the closing tag).
    """

    def __init__(self) -> None:
        self._steps = {"text": self._text, "head": self._head, "json": self._json,
                       "tail": self._tail, "raw": self._raw}
        self._reset()

    def _reset(self) -> None:
        self._state = "text"
        self._held = ""  # "text": a possible tag start; "tail"/"raw": a possible closing tag
        self._body: list[str] = []
        self._depth = 0
        self._quote = ""
        self._escape = False

    @property
    def inside(self) -> bool:
        """The text so far ends inside a call (or inside its opening tag)."""
        return self._state != "text" or bool(self._held)

    def feed(self, text: str) -> list[Segment]:
        out: list[Segment] = []
        data = text
        while data:
            data = self._steps[self._state](data, out)
        return out

    def finish(self, *, cut: bool = False) -> list[Segment]:
        """The end of the text (the scanner starts afresh after). A held partial opening
        tag is text, unless the text was `cut` (then it may have begun a call, and is
        dropped). A block still open is returned unclosed, except one whose JSON is whole
        and only lacks its closing tag (servers that stop at `</tool_call>` as a stop
        word): that one is complete."""
        state, held, body = self._state, self._held, "".join(self._body)
        self._reset()
        if state == "text":
            return [Text(held)] if held and not cut else []
        if state == "tail":
            return [Block(body.strip())]
        return [Block((body + held).strip(), closed=False)]

    # -- states: each consumes some of `data` and returns the rest ------------------------

    def _text(self, data: str, out: list[Segment]) -> str:
        data, self._held = self._held + data, ""
        at = data.find(OPEN)
        if at >= 0:
            if at:
                out.append(Text(data[:at]))
            self._state, self._body = "head", []
            return data[at + len(OPEN):]
        keep = partial_length(data, OPEN)
        if len(data) > keep:
            out.append(Text(data[: len(data) - keep]))
        self._held = data[len(data) - keep:]
        return ""

    def _head(self, data: str, out: list[Segment]) -> str:
        rest = data.lstrip()
        if not rest:
            self._body.append(data)
            return ""
        if rest[0] == "{":
            self._state, self._depth, self._quote, self._escape = "json", 0, "", False
        else:
            self._state = "raw"
        return rest

    def _json(self, data: str, out: list[Segment]) -> str:
        i, n = 0, len(data)
        while i < n:
            if self._escape:
                self._escape = False
                i += 1
                continue
            if self._quote:
                m = _IN_STRING[self._quote].search(data, i)
                if m is None:
                    break
                i = m.end()
                if m.group() == "\\":
                    self._escape = True
                else:
                    self._quote = ""
                continue
            m = _IN_JSON.search(data, i)
            if m is None:
                break
            i = m.end()
            ch = m.group()
            if ch in "\"'":
                self._quote = ch
            elif ch in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth <= 0:
                    self._body.append(data[:i])
                    self._state, self._held = "tail", ""
                    return data[i:]
        self._body.append(data)
        return ""

    def _tail(self, data: str, out: list[Segment]) -> str:
        """After the object: blanks, then `</tool_call>`. Anything else ends the block
        at the object (its closing tag missing) and is read as text again."""
        window = self._held + data
        stripped = window.lstrip()
        if not stripped:
            self._held = window
            return ""
        if stripped.startswith(CLOSE):
            self._close(out)
            return stripped[len(CLOSE):]
        if CLOSE.startswith(stripped):
            self._held = window
            return ""
        self._close(out)
        return stripped

    def _raw(self, data: str, out: list[Segment]) -> str:
        window = self._held + data
        at = window.find(CLOSE)
        if at >= 0:
            self._body.append(window[:at])
            self._close(out)
            return window[at + len(CLOSE):]
        keep = partial_length(window, CLOSE)
        self._body.append(window[: len(window) - keep])
        self._held = window[len(window) - keep:]
        return ""

    def _close(self, out: list[Segment]) -> None:
        """The block is whole: out it goes, and the text outside begins again."""
        out.append(Block("".join(self._body).strip()))
        self._state, self._held, self._body = "text", "", []


# -- calls parsed from text ----------------------------------------------------------------

@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    # The model closed the call inside an argument string; `arguments` are read up to
    # where it evidently meant the string to end (`meant_arguments`).
    meant: bool = False


@dataclass
class ParsedReply:
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # blocks that are not valid calls
    open: bool = False  # the text ends inside a call or its opening tag

    @property
    def has_calls(self) -> bool:
        return bool(self.calls or self.errors)


def parse_tool_calls(text: str) -> ParsedReply:
    """Every `<tool_call>` block, each ending where its JSON ends (`CallScanner` above);
    `json.loads`, then `ast.literal_eval` for Python-style dicts. A block the text ends
    inside is an error (and `open`); one whose object is whole but lacks the closing
    tag at the very end is accepted."""
    scanner = CallScanner()
    segments = scanner.feed(text)
    out = ParsedReply(open=scanner.inside)
    for segment in [*segments, *scanner.finish()]:
        if isinstance(segment, Block):
            parse_block(segment, out)
    return out


def parse_block(block: Block, out: ParsedReply) -> None:
    body = block.body
    if not block.closed:
        whole = meant_body(body)
        if whole is None:
            out.errors.append(f"a call that was never finished: {body[:200]}")
            return
        before = len(out.calls)
        parse_block(Block(whole, closed=True), out)
        if len(out.calls) > before:
            out.calls[-1].meant = True
        return
    if not body:
        out.errors.append("an empty <tool_call> block")
        return
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        try:
            obj = ast.literal_eval(body)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            out.errors.append(f"not valid JSON: {body[:200]}")
            return
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        out.errors.append(f"a call needs a \"name\" and \"arguments\": {body[:200]}")
        return
    args = obj.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (ValueError, RecursionError):
            out.errors.append(f"the arguments of {obj['name']} are not a JSON object")
            return
    if not isinstance(args, dict):
        out.errors.append(f"the arguments of {obj['name']} are not a JSON object")
        return
    meant = meant_arguments(args) if tag_inside(args) is not None else None
    out.calls.append(ToolCall(obj["name"], args) if meant is None else ToolCall(obj["name"], meant, meant=True))


def response_blocks(text: str) -> list[str]:
    """The `<tool_response>` blocks of a Hermes tool turn (modes/tools/protocol writes
    each as the tags around one JSON object, joined by newlines), read by their JSON so a
    tag inside a result cannot split one; [] if the text is not in that shape."""
    head, tail = RESPONSE_OPEN, RESPONSE_CLOSE
    decoder, blocks, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if not text.startswith(head, at):
            return []
        try:
            _obj, end = decoder.raw_decode(text, at + len(head))
        except ValueError:
            return []
        if not text.startswith(tail, end):
            return []
        blocks.append(text[at:end + len(tail)])
        at = end + len(tail) + (1 if text.startswith("\n", end + len(tail)) else 0)
    return blocks


def call_block(name: str, arguments: Any, call_format: str) -> str:
    """One call as the model writes it: its tags around the object, keys in the model's
    order (prompt/call_format.py)."""
    values = {"name": name, "arguments": arguments}
    obj = {key: values[key] for key in keys(call_format)}
    return f"{OPEN}\n{json.dumps(obj, ensure_ascii=False)}\n{CLOSE}"
