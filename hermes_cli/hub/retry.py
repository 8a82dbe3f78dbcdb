"""Retrying what the Hub refuses for a moment: 5xx answers, 429 (after its Retry-After),
and dropped connections. huggingface_hub retries some of these itself (a 429 on the
transfer, a connection cut mid-file); the metadata calls and a 500 on the transfer it
does not. A download interrupted this way resumes from its partial file."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hermes_cli import env, retry

T = TypeVar("T")
ATTEMPTS = 4


def retryable(e: BaseException) -> bool:
    """A Hub failure that may pass (the one policy, hermes_cli/retry.py); a Hub that
    cannot be reached at all is reported at once."""
    return retry.may_pass(e, unreachable_may_pass=False)


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
            time.sleep(retry.wait_before(attempt, e, base))
    raise AssertionError("unreachable")
