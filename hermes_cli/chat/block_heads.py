"""Where to cut the head off a Markdown block that is still streaming, so the live area
stays a few rows tall (chat/render.py prints the head for good, the rest stays live).

Why the live area must stay short: a terminal that reflows its lines when the window
narrows (tmux, and most modern terminals) keeps the bottom of the screen in place and
pushes rows above into scrollback, as many as the lines below them gained. The live
area's top is pushed there once its own rows gain more lines than there are rows above
it, and scrollback is out of reach of any escape sequence: a 27-row paragraph narrowed
from 100 to 50 columns left its first rows on screen twice. An area of a few rows at the
bottom of the screen keeps its top on screen unless the window narrows to a fraction of
its width smaller than the area's share of the screen.

A head is cut in the source, not in the rendered rows: at a word of a paragraph, a line
of code, an item of a list. A later resize then rewraps the rest at the new width and no
word is lost or shown twice. A cut is taken only when the head rendered alone and the
rest rendered alone give exactly the rows the whole block renders to now (a head that
would look different printed on its own is not cut), only when the head leaves no inline
markup open (a `**`, a backtick or a `[` that the rest could still close would restyle
the rest alone), and only before a word that markup cannot shorten later (`**bold`
shown literally now may fit on the row above once closed). Rows of a paragraph never
change once a later row exists (wrapping is greedy), so what is printed is what the
whole block shows at the end. A numbered list is aligned for its last number, so its
items are printed only once a few more would not add a digit (from its ninth item: rich
counts one past the last). Quotes, tables, HTML and the inside of a list item stay live
whole, as before (cropped to the screen).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Rows = list[list[Any]]  # rendered rows of rich Segments
Render = Callable[[str], Rows]

LIST_ITEM = re.compile(r"^(\s{0,3})([-*+]|\d{1,9}[.)])\s")  # a list item's line: indent, marker
_NOT_A_PARAGRAPH = re.compile(r"^\s{0,3}([#>|<]|[-*+]\s|\d{1,9}[.)]\s)|^( {4}|\t)")
# Markup left as literal text in a rendered head that later text could still close.
_STILL_OPEN = re.compile(r"`|\[|[*~](?=\S)|(?<!\w)_(?=\S)")
_WORD = re.compile(r"\S+")
_FENCE_OR_BLANK = re.compile(r"^\s*[`~]*\s*$")
# Characters that markup, an entity or an escape can remove from a word once it is complete.
_MAY_SHRINK = re.compile(r"[*_`~\[\]<>&\\]")


@dataclass(frozen=True)
class Cut:
    """`head`: rows to print now. `rest`: the block's source lines that stay live (the
    last one may be unfinished). `lead`: rows the rest's own render puts before what
    continues the head (a code block's top padding, a list's opening blank row), left
    out wherever the rest is drawn or printed."""

    head: Rows
    rest: list[str]
    lead: int


def cut(lines: list[str], render: Render, *, keep: int, code: bool, shown: int = 0) -> Cut | None:
    """The largest head that leaves about `keep` rows live, or None. `lines`: the block's
    source (the last line may be unfinished); `code`: inside a fence (the first line is
    the opener); `shown`: leading rows of the block's render not drawn (its `lead`)."""
    whole = render("\n".join(lines))
    if len(whole) - shown <= keep + 1:
        return None
    if code:
        found = _cut_code(lines, whole, render, keep)
    elif item := LIST_ITEM.match(lines[0]):
        found = _cut_list(lines, item, whole, render)
    elif _NOT_A_PARAGRAPH.match(lines[0]) or any(not line.strip() or "|" in line for line in lines):
        return None
    else:
        found = _cut_paragraph(lines, whole, render, keep)
    if found is None or len(found.head) <= shown:
        return None
    return Cut(head=found.head[shown:], rest=found.rest, lead=found.lead)


def _cut_paragraph(lines: list[str], whole: Rows, render: Render, keep: int) -> Cut | None:
    """Before the first word of a row near the end (the last that can be cut)."""
    text = "\n".join(lines)
    starts = [m.start() for m in _WORD.finditer(text)]
    for live in range(keep, min(keep + 3, len(whole))):
        words = sum(len(_plain(row).split()) for row in whole[:len(whole) - live])
        if not 0 < words < len(starts):
            continue
        head, rest = text[:starts[words]].rstrip(), text[starts[words]:]
        if _MAY_SHRINK.search(rest.split(None, 1)[0]):
            continue  # `**bold` shown literally now may fit on the head's last row once closed
        found = _checked(head, rest, whole, render)
        if found is not None:
            return found
    return None


def _cut_code(lines: list[str], whole: Rows, render: Render, keep: int) -> Cut | None:
    """Before a line near the end (the last `keep` lines stay; one may be unfinished)."""
    opener, body = lines[0], lines[1:]
    fence = re.match(r"\s{0,3}(`{3,}|~{3,})", opener)
    if fence is None:  # (the renderer starts a code block at its fence: not expected)
        return None
    for at in range(len(body) - keep, max(0, len(body) - keep - 3), -1):
        if all(_FENCE_OR_BLANK.match(line) for line in body[at:]):
            continue  # the rest may yet close the block empty, which rich draws as a blank row
        head = "\n".join([opener, *body[:at], fence.group(1)])  # (a head ending in blanks renders without them)
        found = _checked(head, "\n".join([opener, *body[at:]]), whole, render, markup=False)
        if found is not None:
            return found
    return None


def _cut_list(lines: list[str], first: re.Match[str], whole: Rows, render: Render) -> Cut | None:
    """Before the item being written: the items above it are finished. `first`: the
    first line's LIST_ITEM match."""
    indent = first.group(1)
    starts = [i for i, line in enumerate(lines) if (m := LIST_ITEM.match(line)) and m.group(1) == indent]
    if len(starts) < 2:
        return None
    number = first.group(2)[:-1]
    if number.isdigit():  # rich aligns a numbered list for (one past) its last number
        last = int(number) + len(starts)
        if len(str(last)) != len(str(last + 50)):
            return None  # a few more items would add a digit: printed items would not move
    at = starts[-1]
    return _checked("\n".join(lines[:at]).rstrip(), "\n".join(lines[at:]), whole, render)


def _checked(head: str, rest: str, whole: Rows, render: Render, *, markup: bool = True) -> Cut | None:
    """The cut if printing `head` and drawing `rest` shows exactly `whole`. `markup`: text
    whose inline markup could still be closed later (not code)."""
    if not head.strip() or not rest.strip():
        return None
    head_rows, rest_rows = render(head), render(rest)
    if markup and _STILL_OPEN.search(" ".join(_plain(row) for row in head_rows)):
        return None
    target = _simple(whole)
    for trail in (0, 1):  # a code block's bottom padding
        for lead in (0, 1):  # its top padding; a list's opening blank row
            kept = head_rows[:len(head_rows) - trail]
            if kept and _simple(kept + rest_rows[lead:]) == target:
                return Cut(head=kept, rest=rest.split("\n"), lead=lead)
    return None


def _plain(row: list[Any]) -> str:
    return "".join(segment.text for segment in row)


def _simple(rows: Rows) -> list[list[Any]]:
    """Rows compared by what they show: no style and the empty style alike, adjacent
    segments of one style merged."""
    from rich.segment import Segment
    from rich.style import Style

    null = Style.null()
    return [list(Segment.simplify(Segment(s.text, s.style or null, s.control) for s in row)) for row in rows]
