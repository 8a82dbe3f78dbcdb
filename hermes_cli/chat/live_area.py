"""The one live area a streaming reply redraws at the bottom of the screen (Markdown text
in chat/render.py, raw JSON in chat/reply_view.py).

Between draws the cursor rests at the area's top-left corner, not after its last line as
rich's `Live` leaves it, and every redraw starts with "erase to the end of the screen".
Everything the area ever drew is below the cursor, so it is always erased whole. Two
faults of rich's `Live`, each seen on a real terminal (tmux), came from the cursor
resting at the bottom:

- The window narrowing while a paragraph streamed: the terminal reflows the area's
  lines onto more rows, keeping the cursor's row, so the top of the area moved above it
  (into scrollback); `Live` moved up over as many rows as it had drawn and the rest of
  the paragraph stayed, shown twice once the block was printed.
- Printing above the area while it held a tall frame: `Live` printed the new lines,
  drew the stale frame again under them, and only then erased it, leaving the cursor
  high on the screen: a reply whose last block was taller than the window ended with
  the footer and prompt on the top rows and the rest of the screen blank. Here the area
  is erased first, then the lines are printed.

A frame is written in one write (erase, rows, the move back to its top): a resize that
landed between drawing the rows and moving up left the cursor under the frame.

A terminal that reflows (tmux) keeps the bottom of the screen in place when the window
narrows and pushes rows above into scrollback, as many as the lines below them gained:
a frame of many rows lost its top rows there, out of reach (measured with `tmux
resize-window -x 50`: the first two of eight rows stayed). The Markdown renderer keeps
its frames a few rows tall for that reason (chat/block_heads.py).

The erase is line by line (erase line, cursor down, for the screen's height, inside a
saved and restored cursor), not "erase to the end of the screen": from the top-left
corner that is a whole-screen clear, which tmux (`scroll-on-clear`, on by default)
copies into scrollback first, one whole frame per redraw once a narrowed window had
put the area's top on the first row.
"""

from __future__ import annotations

from typing import Any

_HIDE_CURSOR, _SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


class LiveArea:
    """A transient area under everything printed: `show` a frame, `print_above` what is
    done (scrollback, for good), `stop` when the reply ends (nothing is left behind)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._drawn = False  # a frame is on screen, below the cursor
        self._hidden = False

    @property
    def height(self) -> int:
        """The rows a frame may take: the screen less room for the line above it."""
        return max(3, self.console.size.height - 3)

    def show(self, lines: list[list[Any]]) -> None:
        """Draw `lines` (rows of rich Segments, none wider than the screen) as the frame,
        then rest the cursor on its first row."""
        from rich.segment import Segment, Segments

        lines = [_trimmed(line) for line in lines]
        frame: list[Any] = []
        for i, line in enumerate(lines):
            frame += [*line, Segment.line()] if i < len(lines) - 1 else line
        with self.console.capture() as captured:
            self.console.print(Segments(frame), end="")
        # One write: a resize that lands between drawing the frame and moving back to its
        # top would leave the cursor under the frame, and the frame on screen twice.
        self._write((_HIDE_CURSOR if not self._hidden else "") + self._erase_below() + captured.get()
                    + "\r" + (f"\x1b[{len(lines) - 1}A" if len(lines) > 1 else ""))
        self._hidden = True
        self._drawn = True

    def print_above(self, renderable: Any) -> None:
        """Print for good: the frame is erased first, and drawn again by the next `show`."""
        self.clear()
        self.console.print(renderable, end="")

    def clear(self) -> None:
        if self._drawn:
            self._write(self._erase_below())
            self._drawn = False

    def stop(self) -> None:
        self.clear()
        if self._hidden:
            self._write(_SHOW_CURSOR)
            self._hidden = False

    def _erase_below(self) -> str:
        """From the cursor's row to the bottom of the screen, line by line (see the module)."""
        return "\r\x1b7" + "\x1b[2K\x1b[B" * self.console.size.height + "\x1b8"

    def _write(self, control: str) -> None:
        out = self.console.file
        out = getattr(out, "rich_proxied_file", out)  # rich's stdout proxy would print it as text
        out.write(control)
        out.flush()


def _trimmed(line: list[Any]) -> list[Any]:
    """A row without its trailing blanks: a row that fills the screen's width (rich keeps
    the space after the last word) leaves the terminal waiting to wrap, and tmux then
    reflowed it together with the next row on a resize, above the area's top."""
    from rich.segment import Segment

    out = list(line)
    while out and not out[-1].control and not out[-1].text.rstrip(" "):
        out.pop()
    if out and not out[-1].control and out[-1].text.endswith(" "):
        last = out[-1]
        out[-1] = Segment(last.text.rstrip(" "), last.style)
    return out
