"""`hermes info`: what llama.cpp was built with, what it will do on this machine, and
what the model file says about itself. Plain text, one fact per line."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hermes_cli import env
from hermes_cli.cli.main import guard_stdout


@guard_stdout
def info(model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="PATH.gguf, owner/repo or owner/repo:QUANT. "
        "Default: $HERMES_MODEL or " + env.DEFAULT_MODEL_REF, show_default=False)] = None) -> None:
    """The llama.cpp build (backends, GPU offload), this machine, and the model's metadata."""
    from hermes_cli.core.report import build_lines, model_lines
    from hermes_cli.hub.cache import find_cached
    from hermes_cli.hub.refs import HubRef, parse_ref
    from hermes_cli.hub.resolve import resolve_model

    for line in build_lines():
        print(line)
    print()
    ref = model or env.default_model_ref()
    if model is None:  # never start a multi-GB download just to describe the default
        parsed = parse_ref(ref)
        cached = find_cached(parsed) if isinstance(parsed, HubRef) else [parsed]
        if not cached or not cached[0].exists():
            print(f"model: {ref} (not downloaded yet: `hermes download`)")
            return
    for line in model_lines(resolve_model(ref)):
        print(line)
