"""Argument descriptions from Google (`Args:`) or NumPy (`Parameters`) docstrings."""

from __future__ import annotations

import inspect
import re

_GOOGLE_ARG = re.compile(r"^\s{2,}(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ARG = re.compile(r"^(\w+)\s*:\s*.*$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {argument: description}) from Google (`Args:`) or NumPy (`Parameters`)
    style docstrings."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary_lines = []
    for line in lines:
        if not line.strip():
            break
        summary_lines.append(line.strip())
    args: dict[str, str] = {}
    i = 0
    while i < len(lines):
        head = lines[i].strip()
        if head in ("Args:", "Arguments:", "Parameters:"):  # Google
            i += 1
            current = None
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                m = _GOOGLE_ARG.match(lines[i])
                indent = len(lines[i]) - len(lines[i].lstrip())
                if m and (current is None or indent <= args.get("__indent__", indent)):  # type: ignore[operator]
                    current = m.group(1).lstrip("*")
                    args[current] = m.group(2).strip()
                    args["__indent__"] = indent  # type: ignore[assignment]
                elif current and lines[i].strip():
                    args[current] = (args[current] + " " + lines[i].strip()).strip()
                i += 1
            continue
        if head == "Parameters" and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:  # NumPy
            i += 2
            current = None
            while i < len(lines) and not (lines[i].strip() and i + 1 < len(lines)
                                           and set(lines[i + 1].strip() or "x") == {"-"}):
                m = _NUMPY_ARG.match(lines[i])
                if m and not lines[i].startswith(" "):
                    current = m.group(1)
                    args[current] = ""
                elif current and lines[i].strip():
                    args[current] = (args[current] + " " + lines[i].strip()).strip()
                i += 1
            continue
        i += 1
    args.pop("__indent__", None)
    return " ".join(summary_lines), args
