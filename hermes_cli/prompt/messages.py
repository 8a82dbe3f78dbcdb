"""A chat turn, the unit every prompt format renders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Message:
    """One chat turn. `token_ids` is set on replies the model generated; they are used
    only once checked against the vocabulary that renders them (prompt/chatml.py), and
    `ids_checked_by` remembers, in memory only, which vocabulary passed them."""

    role: str
    content: str
    token_ids: list[int] | None = field(default=None, compare=False, repr=False)
    ids_checked_by: Any = field(default=None, compare=False, repr=False)
    # The last assistant turn of a prompt, left open for the model to go on writing it
    # (/continue): rendered without its end marker and with no generation prompt after.
    # In memory only, never saved.
    open: bool = field(default=False, compare=False, repr=False)

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def with_system(system: str | None, messages: Sequence[Message]) -> list[Message]:
    """`messages` after the system prompt, when there is one (the one way it is put first)."""
    return ([Message("system", system)] if system else []) + list(messages)
