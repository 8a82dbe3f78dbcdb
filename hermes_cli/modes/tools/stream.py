"""Streaming a tool-mode reply: the text around calls flows as text; each call is held
back and shown as one `ToolCallEvent` once it is whole.

Where a call begins and ends is `CallScanner`'s (prompt/tool_calls.py): text that could
be the start of `<tool_call>` is held until it is clear either way, so the user never
sees half a tag, and a `</tool_call>` inside an argument string does not end the call.
O(1) amortised per character.
"""

from __future__ import annotations

from hermes_cli.modes.events import Event, TextDelta, ToolCallEvent
from hermes_cli.prompt.tool_calls import Block, CallScanner, ParsedReply, Segment, parse_block


class ToolTextSplitter:
    def __init__(self) -> None:
        self._scanner = CallScanner()

    def feed(self, text: str) -> list[Event]:
        return _events(self._scanner.feed(text))

    def finish(self, *, cut: bool = False) -> list[Event]:
        """The end of the reply: show what was held back, unless the reply was `cut`
        (then a held `<tool_` may be a call's start). An unfinished call stays hidden:
        the reply logic reports it."""
        return _events(self._scanner.finish(cut=cut))


def _events(segments: list[Segment]) -> list[Event]:
    events: list[Event] = []
    for segment in segments:
        if isinstance(segment, Block):  # an unfinished one shows only if read as meant
            parsed = ParsedReply()
            parse_block(segment, parsed)
            events += [ToolCallEvent(c.name, c.arguments) for c in parsed.calls]
        elif segment.text:
            events.append(TextDelta(segment.text))
    return events
