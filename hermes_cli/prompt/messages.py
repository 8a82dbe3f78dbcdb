"""A chat turn, the unit every prompt format renders."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Message:
    """One chat turn. `token_ids` is set on replies the model generated (see prompt.chatml
    for when they are trusted)."""

    role: str
    content: str
    token_ids: list[int] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}
