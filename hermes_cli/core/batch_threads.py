"""`hermes batch --concurrency N` on a backend that takes requests from several threads at
once (a served engine: `--endpoint URL`): N lines in flight, each line's record appended
as it completes (one write and fsync, on this thread).

Each line runs the same reply logic as one at a time (text, JSON with validation and
retry, tools run here), on a worker thread. Retries, backoff and skipping a failing
endpoint happen per request (served/pool.py). A line whose own input is at fault gets an
error record; when the servers cannot be reached at all the batch stops with one line
(exit 5), the records so far kept: the same command resumes it with exactly one record
per id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from hermes_cli.core.backends import Backend
from hermes_cli.core.batch import Item


def run_threads(backend: Backend, todo: list[Item], answer: Callable[[Item], dict[str, Any]],
                finished: Callable[[Item, dict[str, Any]], None], concurrency: int) -> None:
    """Answer `todo` (each line by `answer`, on `backend`) with `concurrency` lines in
    flight; `finished` records each."""
    lines: Iterator[Item] = iter(todo)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hermes-batch") as pool:
        running: dict[Future[dict[str, Any]], Item] = {}
        try:
            while True:
                while len(running) < concurrency:
                    item = next(lines, None)
                    if item is None:
                        break
                    running[pool.submit(answer, item)] = item
                if not running:
                    return
                ready, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in ready:
                    item = running.pop(future)
                    finished(item, future.result())  # a ServerError ends the batch here
        except BaseException:
            for future in running:
                future.cancel()
            backend.close()  # requests in flight fail at once: their threads end
            raise
