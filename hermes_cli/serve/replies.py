"""What `hermes serve` adds to the OpenAI reply format (core/openai_reply.py): stop
sequences, and a turn's failure as an HTTP status with OpenAI's error body.

`stop` sequences end a text reply where one first appears (not a JSON or tools reply:
the grammar decides where those end); the text after it is never sent.
"""

from __future__ import annotations

from typing import Any

from hermes_cli.errors import ContextOverflowError, HermesError, OutputContractError, UsageError


class StopText:
    """Finds the first stop sequence in streamed text; holds back a tail that could begin one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self._held = ""
        self.hit = False

    def feed(self, text: str) -> str:
        """The text that can be sent now (after a hit: only what came before the stop)."""
        if self.hit:
            return ""
        text = self._held + text
        found = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if found:
            self.hit, self._held = True, ""
            return text[:min(found)]
        hold = max((k for s in self.stops for k in range(1, min(len(s), len(text) + 1)) if text.endswith(s[:k])),
                   default=0)
        self._held = text[len(text) - hold:] if hold else ""
        return text[:len(text) - hold]

    def finish(self) -> str:
        held, self._held = self._held, ""
        return "" if self.hit else held


def error_body(message: str, kind: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_for(e: BaseException) -> tuple[int, dict[str, Any]]:
    """A turn's failure as (HTTP status, OpenAI error body)."""
    if isinstance(e, ContextOverflowError):
        return 400, error_body(_said(e), "invalid_request_error", param="messages", code="context_length_exceeded")
    if isinstance(e, OutputContractError):  # the answer could not be made valid: not worth a retry
        return 422, error_body(_said(e), "invalid_output", code="output_contract")
    if isinstance(e, UsageError):
        return 400, error_body(_said(e), "invalid_request_error")
    if isinstance(e, HermesError):
        return 500, error_body(_said(e), "server_error")
    return 500, error_body(f"internal error ({type(e).__name__})", "server_error")


def _said(e: BaseException) -> str:
    hint = getattr(e, "hint", None)
    return f"{e} ({hint})" if hint else str(e)
