"""`hermes serve`: the model loaded once, behind an OpenAI-compatible API."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import sys
from typing import Annotated, Any, Optional

import typer

from hermes_cli.cli.options import CALL_FORMAT, LOADING, SAMPLING, Group, LoadFlags, settings, with_options
from hermes_cli.errors import UsageError

MAX_PARALLEL = 255  # llama.cpp holds at most 256 sequences in a context
MIN_SLOT_TOKENS = 256  # below this per slot, a chat's system prompt and a reply do not fit
DRAIN_SECONDS = 30


def _load_flags(**values: Any) -> LoadFlags:
    return LoadFlags(endpoints=[], api_key_env="", **values)


# --model, --ctx, --gpu-layers, --threads, -v, -q as `ask` has them (not --endpoint)
SERVE_LOADING = Group("load", tuple(o for o in LOADING.options if o.name not in ("endpoints", "api_key_env")),
                      _load_flags)


@with_options(SAMPLING.with_help(seed="A default seed for requests that send none. Default: random."),
              SERVE_LOADING, CALL_FORMAT)
def serve(
    *,
    host: Annotated[str, typer.Option(
        help="The address to listen on. Beyond loopback (127.0.0.1, ::1) an API key is required.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port (0: any free one).", min=0, max=65535)] = 8080,
    parallel: Annotated[int, typer.Option(
        help="Requests decoded together (continuous batching); each gets 1/N of the context.",
        min=1)] = 4,
    queue: Annotated[int, typer.Option(
        help="Requests that may wait for a slot; past them the server answers 429.", min=0)] = 64,
    api_key_env: Annotated[Optional[str], typer.Option(
        help="The environment variable holding the API key clients must send (Authorization: "
        "Bearer). Required beyond loopback.", show_default=False)] = None,
    drain_timeout: Annotated[int, typer.Option(
        help="On SIGTERM or Ctrl-C: seconds the requests in flight may take to finish.", min=0)] = DRAIN_SECONDS,
    sampling: dict[str, Any],
    load: LoadFlags,
    call_format: Optional[str],
) -> int:
    """Serve the model over an OpenAI-compatible API: a warm model for any client.

    Chat completions, streamed or whole, with tools (Hermes calls under the call grammar)
    and JSON schemas (validated); /v1/models and /health.

    Loads the model once and keeps it warm: `hermes ask --endpoint local` (and chat,
    batch, or any OpenAI client) then pays no model load. Tools in requests are never run
    here: calls go back to the client. SIGTERM or Ctrl-C stops accepting, lets the
    requests in flight finish, and exits 0.
    """
    if parallel > MAX_PARALLEL:
        raise UsageError(f"--parallel {parallel}: llama.cpp decodes at most {MAX_PARALLEL} sequences together")
    key = _key(host, api_key_env)
    listener = _listen(host, port)
    from hermes_cli.core.config import load_config

    config = load_config()
    chosen = settings(sampling, load, config=config)
    from hermes_cli.cli.options import load_options
    from hermes_cli.core.backends import LocalBackend
    from hermes_cli.core.loading import load_engine
    from hermes_cli.core.turn_queue import TurnQueue
    from hermes_cli.prompt.call_format import choose

    opts = load_options(load, chosen, grammars=True)  # any request may bring a schema or tools
    # a KV stream per slot: a token attends over its own slot's cells only (engine/model.py)
    engine = load_engine(opts, err=sys.stderr, n_seq_max=parallel, kv_unified=parallel == 1)
    try:
        if engine.n_ctx // parallel < MIN_SLOT_TOKENS:
            raise UsageError(f"--parallel {parallel} gives each request {engine.n_ctx // parallel} of the "
                             f"{engine.n_ctx}-token context; at least {MIN_SLOT_TOKENS} are needed",
                             hint="raise --ctx or lower --parallel")
        backend = LocalBackend(engine, model=opts.model)
        fmt = choose(call_format or config.call_format, *backend.model_names())[0]
        turns = TurnQueue(engine, backend.template, parallel=parallel, waiting=queue)
        try:
            return _run(listener, host, _served_name(engine, opts.model), turns, chosen, fmt, key,
                        drain_timeout, load.quiet, engine.n_ctx // parallel)
        finally:
            turns.close()
    finally:
        engine.close()


def _key(host: str, env_name: str | None) -> str | None:
    if env_name is None:
        if not _loopback(host):
            raise UsageError(f"--host {host} listens beyond this machine: an API key is required",
                             hint="set one in an environment variable and name it with --api-key-env NAME")
        return None
    key = os.environ.get(env_name, "")
    if len(key) < 8:
        raise UsageError(f"--api-key-env {env_name}: the variable is {'unset' if not key else 'too short'}; "
                         "a key of at least 8 characters is needed")
    from hermes_cli.errors import keep_secret

    keep_secret(key)
    return key


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads: a port in use is one line now."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                         hint="another server may hold the port: pick one with --port") from None
    return sock


def _served_name(engine: Any, model: str) -> str:
    """The name clients see in /v1/models: the reference it was loaded by, or the file's."""
    return model if not model.endswith(".gguf") else engine.info.path.name


def _run(listener: socket.socket, host: str, name: str, turns: Any, chosen: Any, fmt: str, key: str | None,
         drain: int, quiet: bool, slot_tokens: int) -> int:
    import uvicorn

    from hermes_cli.core.local_server import announced
    from hermes_cli.serve.app import Service, build_app

    service = Service(name, turns, chosen.params, fmt, key)
    config = uvicorn.Config(build_app(service), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=drain)
    server = uvicorn.Server(config)
    port = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/v1"
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else shown
    stopped: list[int] = []
    # uvicorn raises the signal again once it has drained; ours only notes it, so the
    # process ends with exit 0 after a graceful stop, never a signal death.
    previous = {s: signal.signal(s, lambda signum, _f: stopped.append(signum)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with announced(f"http://{local}:{port}/v1", name):
            if not quiet:
                slots = f"{turns.parallel} slot{'s' if turns.parallel > 1 else ''} of {slot_tokens} tokens"
                print(f"hermes serve: {name} at {url} · {slots} · use it: hermes ask --endpoint local \"…\" "
                      "(Ctrl-C stops)", file=sys.stderr, flush=True)
            server.run(sockets=[listener])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        with contextlib.suppress(OSError):
            listener.close()
    if not quiet:
        print("hermes serve: stopped", file=sys.stderr, flush=True)
    return 0
