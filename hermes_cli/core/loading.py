"""Loading the model a command asked for: resolve the reference (downloading if needed),
then load it, with a transient status line on a terminal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from hermes_cli import env
from hermes_cli.core.gpu_hint import gpu_hint, gpu_present
from hermes_cli.errors import ServerError, UsageError

if TYPE_CHECKING:  # the engine and the Hub where a model is loaded: `--endpoint` never pays for them
    from hermes_cli.engine.model import Engine
    from hermes_cli.served.backend import ServedBackend


@dataclass
class LoadOptions:
    model: str
    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    verbose: bool = False
    quiet: bool = False
    gpu_hint: bool = True  # the config's `gpu_hint = false` silences the idle-GPU note
    grammars: bool = False  # replies will be constrained: build the grammar tokenizer during the load
    prompt_cache: bool = False  # keep system prompts' KV state on disk (one-shot ask)


def load_engine(opts: LoadOptions, *, err: TextIO, vocab_only: bool = False,
                n_seq_max: int = 1, kv_unified: bool = True) -> Engine:
    """Resolve and load the model, with a transient status line on a terminal."""
    from hermes_cli.engine.model import Engine
    from hermes_cli.hub.resolve import resolve_model

    path = resolve_model(opts.model, quiet=opts.quiet, err=err)
    show = err.isatty() and not opts.verbose
    if show:
        err.write(f"loading {path.name}…")
        err.flush()
    try:
        engine = Engine.load(path, n_ctx=opts.n_ctx, n_gpu_layers=opts.n_gpu_layers,
                             n_threads=opts.n_threads, verbose=opts.verbose, vocab_only=vocab_only,
                             n_seq_max=n_seq_max, grammars=opts.grammars, kv_unified=kv_unified)
    finally:
        if show:
            err.write("\r\x1b[K")
            err.flush()
    if not opts.quiet and not vocab_only:
        _say_what_the_gpu_does(engine, err, opts.gpu_hint)
    return engine


def connect(endpoints: list[str], model: str | None, key_env: str, *, buffered: bool = False,
            timeout: float | None = None) -> ServedBackend:
    """A served engine instead of a local model; `model` defaults to the one it serves.
    `buffered`: answers read whole, so a cut stream is asked again (batch); `timeout`:
    seconds one request may take."""
    from hermes_cli.core.local_server import resolve
    from hermes_cli.served.backend import ServedBackend
    from hermes_cli.served.client import Endpoint, served_models
    from hermes_cli.served.pool import EndpointPool

    endpoints = [resolve(url) for url in endpoints]
    pool = EndpointPool([Endpoint(url, key_env) if timeout is None else Endpoint(url, key_env, timeout=timeout)
                         for url in endpoints])
    names = pool.call(served_models)
    if model is None:
        if len(names) != 1:
            raise UsageError(f"{pool.primary.base_url} serves {', '.join(names) or 'no model'}: "
                             "pick one with --model NAME")
        model = names[0]
    elif names and model not in names:
        raise ServerError(f"{pool.primary.base_url} does not serve the model {model!r}; it serves: "
                          f"{', '.join(names)}", hint="pick one with --model NAME")
    return ServedBackend(pool, model, buffered=buffered)


def _say_what_the_gpu_does(engine: Engine, err: TextIO, hint_wanted: bool) -> None:
    """A GPU left idle by a CPU build, or a model that only partly fits: one line each."""
    info = engine.info
    if info.offload_partial and info.offload:
        err.write(f"note: {info.offload}\n")
    if hint_wanted and not env.gpu_hint_silenced() and not info.gpu_offload_supported:
        from hermes_cli.engine.build import system_info

        hint = gpu_hint(gpu_present(), info.gpu_offload_supported, system_info())
        if hint:
            err.write(hint + "\n")
