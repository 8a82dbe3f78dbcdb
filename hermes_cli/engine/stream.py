"""The one shape of a generation in progress, local or served: iterate for its text;
`close()` stops it (its `finally` runs, so the result says what was written);
`result` once it has ended. Nothing runs until the first iteration."""

from __future__ import annotations

from collections.abc import Iterator

from hermes_cli.engine.params import GenerationResult


class LazyStream:
    """Subclasses write `_run`, the generator that produces the text and sets `result`."""

    def __init__(self) -> None:
        self._iter: Iterator[str] | None = None
        self.result: GenerationResult | None = None

    def _run(self) -> Iterator[str]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    def close(self) -> None:
        if self._iter is not None:
            self._iter.close()  # type: ignore[attr-defined]
