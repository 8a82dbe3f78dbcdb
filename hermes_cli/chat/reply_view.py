"""Showing one reply's events in the chat, in every mode.

Text streams as Markdown (chat/render.py). JSON streams as it is written, then is shown
highlighted once complete (on a terminal the raw text lives in a transient area). A
tool-mode reply streams its text and shows each call as the model makes it, then its
result. Ctrl-C is passed back into the event stream, so the reply logic keeps the
partial reply whatever was being shown at the time.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hermes_cli.chat.live_area import LiveArea
from hermes_cli.chat.render import MarkdownRenderer, PlainRenderer
from hermes_cli.chat.streaming_terminal import InterruptsBetweenFrames
from hermes_cli.chat.visible import visible
from hermes_cli.core.turn import Turn, TurnNote
from hermes_cli.modes import events as ev
from hermes_cli.modes.tools.loop import short

_REDRAW_SECONDS = 1 / 12  # the live area's redraws, at most (the text renderer's rate too)
# Thinking and raw JSON show their newest rows only while they stream (the JSON is then
# printed whole, the thinking folded to a line): an area of a few rows is one a window
# that reflows when narrowed (tmux) cannot push into scrollback (chat/block_heads.py).
_PREVIEW_ROWS = 4


class ReplyView:
    def __init__(self, console: Any, *, plain: bool) -> None:
        self.console = console
        self.plain = plain or not console.is_terminal
        self.terminal = bool(console.is_terminal)
        self._text: MarkdownRenderer | PlainRenderer | None = None
        self._json: list[str] = []
        self._json_tail: list[str] = []  # finished lines of the JSON so far (a screen's worth)
        self._json_partial: list[str] = []  # pieces of the line being written
        self._drawn = 0.0  # when the live area was last drawn
        self._thinking: list[str] = []  # a reasoning model's thinking, streamed dim, then folded
        self._area: LiveArea | None = None
        # The call the last line printed shows whole, on a terminal (name, arguments as
        # JSON): its approval question need not repeat it (chat/repl.py: confirm).
        self.call_on_screen: tuple[str, str] | None = None

    def show(self, turn: Turn) -> ev.Reply:
        """Show a turn's events; return its reply (Ctrl-C cancels it, the partial reply
        kept: the turn's Final still comes).

        Ctrl-C while the model computes stops it at once; while an event is being drawn
        it waits until the frame is complete (chat/streaming_terminal.py)."""
        event: ev.Event | TurnNote | None = None
        events = iter(turn)
        with InterruptsBetweenFrames() as interrupts:
            while True:
                try:
                    event = next(events) if event is None else event
                    if isinstance(event, ev.Final):
                        with interrupts.frame(reply_complete=True):
                            self._fold_thinking()
                            self._end_text()
                            self._end_json(event.reply)
                        return event.reply
                    with interrupts.frame():
                        self._show(event)
                    event = None
                except KeyboardInterrupt:
                    if turn.ended:  # it came out of the turn (a question, a tool): the turn is over
                        raise
                    turn.cancel()  # the logic keeps what was written
                    event = None
                except StopIteration:
                    raise AssertionError("a reply ended without a Final event") from None

    # -- one event --------------------------------------------------------------------------

    def _show(self, event: ev.Event | TurnNote) -> None:
        self.call_on_screen = None
        if isinstance(event, ev.ThinkingDelta):
            self._think(event.text)
            return
        self._fold_thinking()
        if isinstance(event, ev.TextDelta):
            if self._text is None:
                self._text = (PlainRenderer(self.console.file) if self.plain
                              else MarkdownRenderer(self.console))
            self._text.feed(self._safe(event.text))
        elif isinstance(event, ev.JsonDelta):
            self._json.append(event.text)
            if self.plain:
                self.console.file.write(self._safe(event.text))
                self.console.file.flush()
            else:
                self._draw_json(event.text)
        elif isinstance(event, ev.ToolCallEvent):
            self._end_text()
            self.line(f"→ {event.name} {short(event.arguments)}", "cyan")
            whole = json.dumps(event.arguments, ensure_ascii=False)
            if self.terminal and not self.plain and short(event.arguments) == whole:
                self.call_on_screen = (event.name, whole)
        elif isinstance(event, ev.ToolResultEvent):
            self._end_text()
            mark = {"ok": "←", "error": "✗", "declined": "✗ declined"}[event.status]
            self.line(f"{mark} {event.name} {short(event.content)}", "cyan")
        elif isinstance(event, ev.Notice):
            self._end_text()
            self._restart_json()
            self.line(f"({event.text})", "yellow")
        elif isinstance(event, TurnNote):
            self._end_text()
            self.line(event.text, "yellow" if event.warning else "dim")

    # -- thinking -----------------------------------------------------------------------------

    def _think(self, text: str) -> None:
        """Thinking streams dim in the live area (its newest `_PREVIEW_ROWS`), set apart from the
        answer; piped or plain, nothing of it is printed (the answer is what is shown)."""
        self._thinking.append(text)
        if self.plain or not self._redraw_due():
            return
        budget, pieces, size = self._screen_chars(), [], 0
        for piece in reversed(self._thinking):  # the newest screenful only: O(screen) a redraw
            pieces.append(piece)
            size += len(piece)
            if size >= budget:
                break
        self._show_tail("".join(reversed(pieces))[-budget:], "dim italic")

    def _fold_thinking(self) -> None:
        """Thinking done: one dim line in its place (`/think` shows it whole)."""
        if not self._thinking:
            return
        words = len("".join(self._thinking).split())
        self._thinking = []
        if self._area is not None:
            self._area.stop()
            self._area = None
        self.line(f"(thought: {words} words · /think shows it)", "dim")

    def _safe(self, text: str) -> str:
        return visible(text) if self.terminal else text

    def line(self, text: str, style: str | None = None) -> None:
        text = self._safe(text)
        if self.plain:
            self.console.file.write(text + "\n")
            self.console.file.flush()
        else:
            self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    # -- text -------------------------------------------------------------------------------

    def _end_text(self) -> None:
        if self._text is not None:
            self._text.finish()
            self._text = None

    # -- JSON -------------------------------------------------------------------------------

    def _draw_json(self, text: str) -> None:
        """The newest lines of the JSON so far, in the live area: kept incrementally (the
        finished lines, bounded to the rows shown, and the pieces of the line being written) and
        drawn at most 12 times a second. Joining the whole reply on every token was
        O(n^2): 21 s of host time for a 4,000-token answer."""
        first, *rest = text.split("\n")
        self._json_partial.append(first)
        if rest:
            self._json_tail.append("".join(self._json_partial))
            self._json_tail += rest[:-1]
            self._json_partial = [rest[-1]]
        if not self._redraw_due():
            return
        budget = self._screen_chars()
        assert self._area is not None
        del self._json_tail[:-self._rows()]
        line = "".join(self._json_partial)
        if len(line) > budget:  # one long line (compact JSON): its newest part
            line = line[-budget:]
            self._json_partial = [line]
        self._show_tail("\n".join([*self._json_tail, line]), "dim")

    # -- the live area, shared by JSON and thinking ------------------------------------------

    def _redraw_due(self) -> bool:
        """At most 12 redraws a second, whatever the token rate."""
        now = time.monotonic()
        if now - self._drawn < _REDRAW_SECONDS:
            return False
        self._drawn = now
        return True

    def _rows(self) -> int:
        assert self._area is not None
        return min(_PREVIEW_ROWS, self._area.height)

    def _screen_chars(self) -> int:
        """More characters than the live area shows (creating it on first use)."""
        if self._area is None:
            self._area = LiveArea(self.console)
        return self._rows() * max(20, self.console.width)

    def _show_tail(self, text: str, style: str) -> None:
        """The newest rows of `text`, as the screen wraps them, in the live area."""
        from rich.text import Text

        assert self._area is not None
        rows = self.console.render_lines(Text(self._safe(text), style=style), self.console.options, pad=False)
        self._area.show(rows[-self._rows():])

    def _restart_json(self) -> None:
        if self._json and self.plain:
            self.console.file.write("\n")
        self._json, self._json_tail, self._json_partial = [], [], []
        if self._area is not None:
            self._area.clear()

    def _end_json(self, reply: ev.Reply) -> None:
        if self._area is not None:
            self._area.stop()
            self._area = None
        self._json_tail, self._json_partial = [], []
        if not self._json:
            return
        if self.plain:
            self.console.file.write("\n")
            self.console.file.flush()
        elif reply.value is not None:
            import json

            from rich.json import JSON

            self.console.print(JSON(self._safe(json.dumps(reply.value, ensure_ascii=False))))
        else:  # interrupted: the partial text as it was written
            self.line("".join(self._json))  # (line() makes it visible on a terminal)
        self._json = []
