"""The small output protocol the slash-commands print through. The REPL implements it;
a test or another front end can implement it without a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hermes_cli.core.turn import Turn


class ChatUI(Protocol):
    def say(self, text: str, *, style: str | None = None, indent: int = 0) -> None:
        """A line of status or information, wrapped at words to the screen's width
        (continuation lines indented by `indent` columns)."""

    def error(self, text: str) -> None:
        """A one-line error; the chat goes on."""

    def write_raw(self, text: str) -> None:
        """Text exactly as given (the rendered prompt, escape sequences for the clipboard)."""

    def ask(self, prompt: str, default: str = "") -> str | None:
        """A line from the user; None when they cancel (Ctrl-C, Ctrl-D)."""

    def show_turn(self, turn: Turn) -> None:
        """Show a turn's events (ChatSession.send, .retry, .edit, .continue_reply) as they come."""

    def show_json(self, value: Any) -> None:
        """A JSON value, highlighted on a terminal."""
