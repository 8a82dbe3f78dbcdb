"""Retrying what the Hub refuses for a moment: 5xx answers, 429 (after its Retry-After),
and dropped connections. huggingface_hub retries some of these itself (a 429 on the
transfer, a connection cut mid-file); the metadata calls and a 500 on the transfer it
does not. A download interrupted this way resumes from its partial file."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hermes_cli import env

T = TypeVar("T")
ATTEMPTS = 4
RETRY_STATUS = (408, 429, 500, 502, 503, 504)


def _status(e: BaseException) -> int | None:
    response = getattr(e, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _retry_after(e: BaseException) -> float | None:
    response = getattr(e, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def retryable(e: BaseException) -> bool:
    status = _status(e)
    if status is not None:
        return status in RETRY_STATUS
    # A connection that broke or stalled is worth another try; one that could not be
    # made at all (refused, no route, no DNS) is reported at once.
    return type(e).__name__ in ("ReadTimeout", "RemoteProtocolError", "ReadError", "WriteError")


def with_retries(action: Callable[[], T], *, attempts: int = ATTEMPTS) -> T:
    """`action()`, tried again after a growing wait (or the server's Retry-After) while
    it fails in a way that may pass."""
    base = env.retry_base_seconds()
    for attempt in range(attempts):
        try:
            return action()
        except Exception as e:
            if attempt == attempts - 1 or not retryable(e):
                raise
            wait = _retry_after(e)
            time.sleep(min(60.0, wait if wait is not None else base * 2 ** attempt))
    raise AssertionError("unreachable")
