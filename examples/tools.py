"""Safe example tools for `hermes ask --tools examples/tools.py` and `/tools` in chat."""

from __future__ import annotations

import ast
import datetime as _dt
import operator
from pathlib import Path
from typing import Literal

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod,
        ast.FloorDiv: operator.floordiv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def current_time(timezone: Literal["local", "utc"] = "local") -> str:
    """The current date and time, ISO 8601.

    Args:
        timezone: "local" for this machine's time zone, "utc" for UTC.
    """
    now = _dt.datetime.now(_dt.timezone.utc) if timezone == "utc" else _dt.datetime.now().astimezone()
    return now.isoformat(timespec="seconds")


def calculate(expression: str) -> float:
    """Evaluate arithmetic (+ - * / // % ** and parentheses) without eval().

    Args:
        expression: for example "(2 + 3) * 4 ** 2".
    """
    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise ValueError("only numbers and + - * / // % ** are allowed")

    return walk(ast.parse(expression, mode="eval"))


def read_file(path: str, max_chars: int = 4000) -> str:
    """Read a text file under the current directory (never outside it).

    Args:
        path: a path relative to the current directory.
        max_chars: return at most this many characters.
    """
    root = Path.cwd().resolve()
    target = (root / path).resolve()
    if root not in target.parents and target != root:
        raise PermissionError(f"{path} is outside the current directory")
    return target.read_text(encoding="utf-8", errors="replace")[:max_chars]
