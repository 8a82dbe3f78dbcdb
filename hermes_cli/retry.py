"""The one retry policy, for the Hub (hub/) and for served engines (served/pool.py): which
failures may pass, how long to wait, how often to try. Beside the layers because both
use it.

A failure may pass when the server says so (408, 409, 429 after its Retry-After, 5xx
but 501) or when a connection broke or stalled mid-way. A connection that could not be
made at all is another matter for each caller: the Hub is not there (reported at once),
a served engine may be restarting (tried again). Errors are classified by their classes
(the standard library's, httpx's and httpx2's), imported only once an error is seen, so
start-up pays nothing.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_WAIT = 60.0


def status_of(e: BaseException) -> int | None:
    """The HTTP status an error carries (served/http.py's, or an HTTP library's response)."""
    code = getattr(e, "status_code", None)
    if not isinstance(code, int):
        code = getattr(getattr(e, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def retry_after(e: BaseException) -> float | None:
    """The server's Retry-After, in seconds, if it sent one."""
    headers: Any = getattr(getattr(e, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None and hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@functools.cache
def _broken() -> tuple[type[BaseException], ...]:
    """A connection that broke or stalled after it was made."""
    import http.client

    found: list[type[BaseException]] = [ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                                        TimeoutError, http.client.IncompleteRead, http.client.RemoteDisconnected]
    for name in ("httpx", "httpx2"):
        try:
            lib = importlib.import_module(name)
        except ImportError:
            continue
        found += [getattr(lib, n) for n in ("ReadTimeout", "WriteTimeout", "RemoteProtocolError", "ReadError",
                                            "WriteError") if hasattr(lib, n)]
    return tuple(found)


@functools.cache
def _unreachable() -> tuple[type[BaseException], ...]:
    """A connection that could not be made (refused, no route, timed out connecting)."""
    found: list[type[BaseException]] = [ConnectionRefusedError]
    for name in ("httpx", "httpx2"):
        try:
            lib = importlib.import_module(name)
        except ImportError:
            continue
        found += [getattr(lib, n) for n in ("ConnectError", "ConnectTimeout", "PoolTimeout") if hasattr(lib, n)]
    return tuple(found)


def may_pass(e: BaseException, *, unreachable_may_pass: bool) -> bool:
    """Whether trying `e`'s action again may succeed."""
    status = status_of(e)
    if status is not None:
        return status in RETRY_STATUS
    if isinstance(e, _unreachable()):
        return unreachable_may_pass
    return isinstance(e, (*_broken(), ConnectionError))  # ConnectionError: a stream cut short


def wait_before(attempt: int, e: BaseException, base: float, cap: float = MAX_WAIT) -> float:
    """Seconds to wait before try `attempt + 1`: the server's Retry-After, or a doubling back-off."""
    given = retry_after(e)
    return min(cap, given if given is not None else base * 2 ** attempt)
