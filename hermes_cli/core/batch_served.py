"""`hermes batch --endpoint URL --concurrency N`: the batch's lines against served engines,
N requests in flight, each line's record appended as it completes (one write and fsync).

Each line runs the same reply logic as locally (text, JSON with validation and retry,
tools run here), on a worker thread; the writer stays on this thread. Retries, backoff
and skipping a failing endpoint happen per request (served/pool.py). A line whose own
input is at fault gets an error record; when the servers cannot be reached at all the
batch stops with one line (exit 5), the records so far kept: the same command resumes
it with exactly one record per id.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from hermes_cli.core.backends import EndpointBackend
from hermes_cli.core.batch import BatchOptions, Item, Progress, Recorder, ResultWriter, Summary
from hermes_cli.core.batch_run import answer_line
from hermes_cli.served.backend import ServedBackend


def run_served_batch(backend: ServedBackend, items: list[Item], writer: ResultWriter, done: set[str],
                     opts: BatchOptions, *, concurrency: int = 4,
                     progress: Progress | None = None) -> Summary:
    todo = [it for it in items if it.key not in done]
    finished = Recorder(writer, len(todo), len(items) - len(todo), progress, opts.shape)
    summary = finished.summary

    lines: Iterator[Item] = iter(todo)
    source = EndpointBackend(backend)  # the one Backend door (decision lines are refused there, in one line)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hermes-batch") as pool:
        running: dict[Future[dict[str, Any]], Item] = {}
        try:
            while True:
                while len(running) < concurrency:
                    item = next(lines, None)
                    if item is None:
                        break
                    running[pool.submit(answer_line, source, item, opts)] = item
                if not running:
                    return summary
                ready, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in ready:
                    item = running.pop(future)
                    finished(item, future.result())  # a ServerError ends the batch here
        except BaseException:
            for future in running:
                future.cancel()
            backend.pool.close()  # requests in flight fail at once: their threads end
            raise
