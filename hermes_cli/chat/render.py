"""Streaming a reply to the terminal: Markdown without flicker, or plain text.

Peers re-render the whole reply on every token inside one rich `Live` (O(n^2), and it
corrupts scrollback once the reply is taller than the screen). Here a reply is a
sequence of Markdown blocks (paragraphs, lists, fenced code...). A block that is
finished is rendered once and printed above the live area, into scrollback, for good;
only the unfinished block is live, cropped to the screen's height, and redrawn at most
`refresh_per_second` times. Per token: one list append (and a line split when the token
holds a newline); the redraw cost is bounded per second, not per token.

A block is finished at a blank line outside a code fence once the next line shows that
a new block starts (a list item after a list, or an indented line, continues it), or
when its code fence closes. A block still streaming that grows past `_LIVE_ROWS` rows
has its head printed for good (cut in the source: chat/block_heads.py), so the live
area stays a few rows tall: a terminal that reflows a narrowed window pushes a tall
live area's top into scrollback, out of reach.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TextIO

from hermes_cli.chat import block_heads
from hermes_cli.chat.live_area import LiveArea

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
# A line that opens an HTML block (CommonMark's kinds 2-7, roughly: a whole tag first).
_HTML_START = re.compile(r"^\s{0,3}(<!--|<\?|<![A-Z]|</?(address|article|aside|blockquote|details|div|dl|"
                         r"fieldset|figure|footer|form|h[1-6]|header|hr|li|main|nav|ol|p|section|table|ul)\b"
                         r"|</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>\s*$)", re.IGNORECASE)
# A live block taller than this has its head printed, `_LIVE_KEEP` rows left live: a
# narrowed window keeps such an area's top on screen unless the window narrows to less
# than about _LIVE_ROWS / (rows on screen) of its width.
_LIVE_ROWS, _LIVE_KEEP = 3, 1


class PlainRenderer:
    """Text as it comes (NO_COLOR, --plain, not a terminal)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._ends_with_newline = True

    def feed(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self._ends_with_newline = text.endswith("\n")

    def finish(self) -> None:
        if not self._ends_with_newline:
            self.out.write("\n")
            self.out.flush()
        self._ends_with_newline = True


class MarkdownRenderer:
    """Rich Markdown, committed block by block."""

    def __init__(self, console: Any, *, live: bool = True, refresh_per_second: float = 12.0,
                 code_theme: str = "monokai", clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.code_theme = code_theme
        self._use_live = live
        self._interval = 1.0 / refresh_per_second
        self._clock = clock
        self._area: LiveArea | None = None  # the unfinished block, while it streams
        self._last_draw = 0.0
        self._block: list[str] = []  # complete lines of the unfinished block
        self._partial: list[str] = []  # pieces of the current, unfinished line
        self._fence: str | None = None  # the open fence marker, if inside code
        self._blank_pending = False  # a blank line ended a block candidate
        self._prev_text: str | None = None  # the last committed block's source...
        self._prev_lines: list[Any] = []  # ...and its rendered lines
        self._separator: list[Any] = []  # the lines between it and the live block
        self._continued = False  # the live block's head is already printed...
        self._lead = 0  # ...and its render's first rows belong to the head (chat/block_heads.py)
        self._next_cut = 0  # rows the live block must reach before a head is cut again

    # -- feeding ----------------------------------------------------------------------

    def feed(self, text: str) -> None:
        if not text:
            return
        if "\n" not in text:
            self._partial.append(text)
        else:
            first, *middle, last = text.split("\n")
            self._partial.append(first)
            self._line("".join(self._partial))
            for line in middle:
                self._line(line)
            self._partial = [last] if last else []
        self._maybe_draw()

    def finish(self) -> None:
        """Print what is left; stop the live area."""
        if self._partial:
            self._block.append("".join(self._partial))
            self._partial = []
        while self._block and not self._block[-1].strip():
            self._block.pop()
        if self._block:
            self._commit(self._block)
            self._block = []
        self._stop_live()

    # -- blocks -----------------------------------------------------------------------

    def _line(self, line: str) -> None:
        fence = _FENCE.match(line)
        if self._fence is not None:  # inside code: only the closing fence matters
            self._block.append(line)
            if (fence is not None and not line[fence.end():].strip()  # a closing fence has no info string
                    and fence.group(1)[0] == self._fence[0] and len(fence.group(1)) >= len(self._fence)):
                self._fence = None
                self._commit(self._block)
                self._block = []
            return
        if not line.strip():
            if self._block:
                self._blank_pending = True
                self._block.append(line)
            return
        if self._blank_pending and self._starts_new_block(line):
            while self._block and not self._block[-1].strip():
                self._block.pop()
            self._commit(self._block)
            self._block = []
        self._blank_pending = False
        if fence and self._block and _HTML_START.match(self._block[0]):
            fence = None  # inside an HTML block (until a blank line) a fence is text
        if fence:
            if self._block:  # a fence right under text still opens a new block
                self._commit(self._block)
                self._block = []
            self._fence = fence.group(1)
        if not self._block and not self._continued:
            self._separator = self._separator_before(line)
        self._block.append(line)

    def _starts_new_block(self, line: str) -> bool:
        if line.startswith(("  ", "\t")):
            return False  # indented: continues a list item or code
        in_list = any(block_heads.LIST_ITEM.match(b) for b in self._block if b.strip())
        return not (in_list and block_heads.LIST_ITEM.match(line))

    def _markdown(self, text: str) -> Any:
        from rich.markdown import Markdown

        return Markdown(text, code_theme=self.code_theme)

    def _render_lines(self, text: str) -> list[Any]:
        return self.console.render_lines(self._markdown(text), self.console.options, pad=True)

    def _separator_before(self, first_line: str) -> list[Any]:
        """The blank lines a one-shot render puts between the last committed block and a
        block starting with `first_line`, so that the live block sits where it will be
        printed (without them, the blank line between paragraphs appears only when the
        next paragraph is committed). One render of the previous block per block."""
        if self._prev_text is None or not self._use_live:
            return []
        both = self._render_lines(self._prev_text + "\n\n" + first_line)
        alone = self._render_lines(first_line)
        head = len(self._prev_lines)
        between = len(both) - head - len(alone)
        if between <= 0 or both[:head] != self._prev_lines:
            return []
        return both[head:head + between]

    def _commit(self, lines: list[str]) -> None:
        """Print a finished block exactly as a one-shot render of the whole reply would.

        The spacing between two blocks depends on both (rich puts a blank line after
        some elements, and lists or quotes bring their own), so the previous block is
        rendered together with this one and only the new lines are printed: each block
        is rendered about three times in all, linear in the reply's length.
        """
        if not lines:
            return
        from rich.segment import Segment, Segments

        text = "\n".join(lines)
        if self._continued:  # its head is printed: the rest, right under it
            rendered = self._render_lines(text)
            new = rendered[self._lead:]
            self._continued, self._lead, self._next_cut = False, 0, 0
        elif self._prev_text is None:
            rendered = self._render_lines(text)
            new = rendered
        else:
            rendered = self._render_lines(self._prev_text + "\n\n" + text)
            head = len(self._prev_lines)
            if rendered[:head] == self._prev_lines:
                new = rendered[head:]
            else:  # not a clean prefix (should not happen): keep the content right
                new = [[]] + self._render_lines(text)
            rendered = self._render_lines(text)
        self._prev_text, self._prev_lines = text, rendered
        segments = [seg for line in new for seg in (*line, Segment.line())]
        if self._area is not None:
            self._area.print_above(Segments(segments))
        else:
            self.console.print(Segments(segments), end="")

    # -- the live area ----------------------------------------------------------------

    def _maybe_draw(self) -> None:
        if not self._use_live:
            return
        now = self._clock()
        if now - self._last_draw < self._interval:
            return
        self._last_draw = now
        lines = self._live_source()
        if not lines:
            return
        if self._area is None:
            self._area = LiveArea(self.console)
        height = self._area.height
        text = "\n".join(lines)
        budget = height * max(20, self.console.width)  # more than the screen can show
        cropped = len(text) > budget
        if cropped:  # the newest part only, from a word boundary near the cut
            cut = len(text) - budget
            space = next((i for i in range(cut, min(len(text), cut + self.console.width)) if text[i].isspace()),
                         cut)  # a run with no space in reach (base64, a URL, a model repeating): cut in it
            text = text[space:].lstrip("\n")
            if self._fence is not None:
                text = self._block[0] + "\n" + text  # still code: keep the fence opener
        # The newest lines of the block as the screen wraps them, however long one of
        # its paragraphs is.
        # (A cropped list or paragraph starts anywhere: its first row is not the lead.)
        rendered = self._live_lines(text, lead=self._lead if not cropped or self._fence is not None else 0)
        rows = len(rendered)
        if not cropped and rows > _LIVE_ROWS and rows >= self._next_cut and self._cut_head(lines, rows):
            rendered = self._live_lines("\n".join(self._live_source()), lead=self._lead)
        self._area.show((self._separator + rendered)[-height:])

    def _live_source(self) -> list[str]:
        """The unfinished block's lines, the line being written last."""
        return self._block + (["".join(self._partial)] if self._partial else [])

    def _live_lines(self, text: str, *, lead: int) -> list[Any]:
        return self.console.render_lines(self._markdown(text), self.console.options, pad=False)[lead:]

    def _cut_head(self, lines: list[str], rows: int) -> bool:
        """Print the head of the live block (`rows` tall) if one can be cut
        (chat/block_heads.py), and keep its rest live. A block that cannot be cut is tried
        again a quarter taller, so trying costs O(n) over the block."""
        found = block_heads.cut(lines, self._render_lines, keep=_LIVE_KEEP, code=self._fence is not None,
                                shown=self._lead)
        if found is None:
            self._next_cut = rows + max(1, rows // 4)
            return False
        from rich.segment import Segment, Segments

        assert self._area is not None
        self._area.print_above(Segments([seg for row in self._separator + found.head
                                         for seg in (*row, Segment.line())]))
        self._separator, self._continued, self._lead, self._next_cut = [], True, found.lead, 0
        if self._partial:
            self._block, self._partial = found.rest[:-1], [found.rest[-1]] if found.rest[-1] else []
        else:
            self._block = found.rest
        return True

    def _stop_live(self) -> None:
        if self._area is not None:
            self._area.stop()
            self._area = None
