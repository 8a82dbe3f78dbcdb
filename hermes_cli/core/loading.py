"""Loading the model a command asked for: resolve the reference (downloading if needed),
then load it, with a transient status line on a terminal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from hermes_cli.engine.model import Engine
from hermes_cli.hub.resolve import resolve_model


@dataclass
class LoadOptions:
    model: str
    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    verbose: bool = False
    quiet: bool = False


def load_engine(opts: LoadOptions, *, err: TextIO, vocab_only: bool = False,
                n_seq_max: int = 1) -> Engine:
    """Resolve and load the model, with a transient status line on a terminal."""
    path = resolve_model(opts.model, quiet=opts.quiet, err=err)
    show = err.isatty() and not opts.verbose
    if show:
        err.write(f"loading {path.name}…")
        err.flush()
    try:
        return Engine.load(path, n_ctx=opts.n_ctx, n_gpu_layers=opts.n_gpu_layers,
                           n_threads=opts.n_threads, verbose=opts.verbose, vocab_only=vocab_only,
                           n_seq_max=n_seq_max)
    finally:
        if show:
            err.write("\r\x1b[K")
            err.flush()
