"""The first fenced code block of an answer (`ask -x`, `/copy code`), as llm's `-x` does:
`hermes ask -x "a bash one-liner that counts files" | sh` gets the code, not the prose.

`CodeExtractor` reads the answer as it streams and hands out the block's lines as soon as
they are whole, so the code prints while it is written, and says when the block has
closed (the caller may stop the generation there: the rest is not wanted). A fence is
three or more backticks or tildes at the start of a line (up to three spaces of indent);
the block ends at a line of the same character, at least as long.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CLOSING = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")  # a closing fence has no info string


class CodeExtractor:
    """Feed text; get the code block's text. `done` once its closing fence was read."""

    def __init__(self) -> None:
        self._line: list[str] = []
        self._fence: str | None = None
        self.found = False
        self.done = False

    def feed(self, text: str) -> str:
        out: list[str] = []
        while text and not self.done:
            newline = text.find("\n")
            if newline < 0:
                self._line.append(text)
                break
            self._line.append(text[:newline])
            text = text[newline + 1:]
            out.append(self._whole_line("".join(self._line)))
            self._line = []
        return "".join(out)

    def finish(self) -> str:
        """The end of the answer: a block left open gives its last line too."""
        line, self._line = "".join(self._line), []
        if self._fence is not None and not self.done and line and not self._closes(line):
            return line + "\n"
        return ""

    def _whole_line(self, line: str) -> str:
        if self._fence is None:
            fence = _FENCE.match(line)
            if fence:
                self._fence, self.found = fence.group(1), True
            return ""
        if self._closes(line):
            self.done = True
            return ""
        return line + "\n"

    def _closes(self, line: str) -> bool:
        closing = _CLOSING.match(line)
        if closing is None or self._fence is None:
            return False
        marker = closing.group(1)
        return marker[0] == self._fence[0] and len(marker) >= len(self._fence)


def first_code_block(text: str) -> str | None:
    """The first fenced block's code of a whole answer, or None when it has none."""
    extractor = CodeExtractor()
    code = extractor.feed(text) + extractor.finish()
    return code if extractor.found else None
