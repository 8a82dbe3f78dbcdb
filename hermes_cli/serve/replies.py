"""What `hermes serve` adds to the OpenAI reply format (core/openai_reply.py): a turn's
failure as an HTTP status with OpenAI's error body."""

from __future__ import annotations

from typing import Any

from hermes_cli.errors import ContextOverflowError, HermesError, OutputContractError, UsageError


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
