"""One or several endpoints with one retry policy: a request that fails in a way that may
pass (429, honouring Retry-After; 5xx; a connection refused, dropped or timed out) is
tried again after a growing wait, on the next endpoint that is not failing. A failing
endpoint is skipped until its cool-down ends, so a batch keeps going on the others.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from hermes_cli import env, retry
from hermes_cli.errors import ServerError
from hermes_cli.served.client import Endpoint, translate

T = TypeVar("T")
ATTEMPTS = 6  # per request, over all endpoints
MAX_WAIT = 30.0


def retryable(e: BaseException) -> bool:
    """A served engine's failure that may pass (the one policy, hermes_cli/retry.py): a
    server that cannot be reached may be restarting, so that is tried again too."""
    return retry.may_pass(e, unreachable_may_pass=True)


class EndpointPool:
    def __init__(self, endpoints: list[Endpoint], *, attempts: int = ATTEMPTS) -> None:
        if not endpoints:
            raise ValueError("no endpoint")
        self.endpoints = endpoints
        self.attempts = attempts
        self._next = itertools.cycle(range(len(endpoints)))
        self._until = [0.0] * len(endpoints)  # skipped until this monotonic time
        self._strikes = [0] * len(endpoints)
        self._lock = threading.Lock()

    @property
    def primary(self) -> Endpoint:
        return self.endpoints[0]

    def _pick(self) -> int:
        with self._lock:
            now = time.monotonic()
            for _ in range(len(self.endpoints)):
                i = next(self._next)
                if self._until[i] <= now:
                    return i
            return min(range(len(self.endpoints)), key=lambda j: self._until[j])

    def _failed(self, i: int, e: BaseException) -> None:
        with self._lock:
            self._strikes[i] += 1
            wait = retry.wait_before(self._strikes[i] - 1, e, env.retry_base_seconds(), MAX_WAIT)
            self._until[i] = time.monotonic() + wait

    def _succeeded(self, i: int) -> None:
        with self._lock:
            self._strikes[i] = 0

    def call(self, action: Callable[[Endpoint], T], *, model: str | None = None) -> T:
        """`action(endpoint)` until it succeeds or may not pass; ServerError otherwise."""
        last: BaseException | None = None
        for _attempt in range(self.attempts):
            i = self._pick()
            delay = self._until[i] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                result = action(self.endpoints[i])
            except Exception as e:  # noqa: BLE001 - sorted below
                if isinstance(e, ServerError) or not retryable(e):
                    raise translate(e, self.endpoints[i], model) from None
                last = e
                self._failed(i, e)
                continue
            self._succeeded(i)
            return result
        assert last is not None
        failed = translate(last, self.endpoints[0], model)
        raise ServerError(f"gave up after {self.attempts} tries: {failed}", hint=failed.hint) from None

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.close()
