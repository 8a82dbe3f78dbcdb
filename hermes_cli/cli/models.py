"""`hermes download` and `hermes models`: the Hub side of models, without loading one."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from hermes_cli import env
from hermes_cli.cli.main import guard_stdout
from hermes_cli.errors import HermesError


@guard_stdout
def download(
    model: Annotated[Optional[str], typer.Argument(
        help="owner/repo, owner/repo:QUANT or owner/repo/file.gguf. Default: $HERMES_MODEL "
        "or " + env.DEFAULT_MODEL_REF, show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No download messages or progress bar.")] = False,
) -> None:
    """Download a model (and verify it) without chatting; print its local path."""
    from hermes_cli.hub.download import download as fetch
    from hermes_cli.hub.refs import HubRef, parse_ref

    ref = parse_ref(model or env.default_model_ref())
    if not isinstance(ref, HubRef):
        raise typer.BadParameter(f"{model} is a local path, not a Hub reference")
    paths = fetch(ref, quiet=quiet)
    print(paths[0])


@guard_stdout
def models(
    repo: Annotated[Optional[str], typer.Argument(
        help="A Hub repository: list its quants (name, size, cached or not).",
        show_default=False)] = None,
    rm: Annotated[Optional[str], typer.Option(
        "--rm", help="Delete a cached model (owner/repo:QUANT or owner/repo/file.gguf).",
        show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", help="List the models an OpenAI-compatible server serves.",
        show_default=False)] = None,
    api_key_env: Annotated[str, typer.Option(
        help="The environment variable holding the endpoint's API key.")] = "OPENAI_API_KEY",
) -> None:
    """List a repository's quants and the GGUF models already cached."""
    if endpoint is not None:
        from hermes_cli.served.client import Endpoint, served_models

        for name in served_models(Endpoint(endpoint, api_key_env)):
            print(name)
        return
    from hermes_cli.hub import cache
    from hermes_cli.hub.download import available_quants, list_remote
    from hermes_cli.hub.refs import HubRef, human_size, parse_ref

    if rm is not None:
        ref = parse_ref(rm)
        if not isinstance(ref, HubRef):
            raise typer.BadParameter(f"{rm} is a local path; delete it yourself", param_hint="--rm")
        cached = cache.find_cached(ref)
        if not cached:
            raise HermesError(f"{ref} is not cached")
        size = sum(p.stat().st_size for p in cached)
        if not yes:
            if not sys.stdin or not sys.stdin.isatty():
                raise HermesError(f"not deleting {ref} without confirmation", hint="add --yes")
            if not typer.confirm(f"Delete {ref} ({human_size(size)})?"):
                raise HermesError(f"{ref} was not deleted")
        cache.remove_cached(ref)
        print(f"deleted {ref} ({human_size(size)})")
        return
    found = cache.cached_models()
    if repo is not None:
        ref = parse_ref(repo)
        if not isinstance(ref, HubRef):
            raise typer.BadParameter(f"{repo} is not a Hub repository")
        _, files = list_remote(ref.repo_id)
        have = {c["quant"] for c in found if c["repo"] == ref.repo_id}
        print(f"{ref.repo_id}:")
        for quant, size in sorted(available_quants(files).items()):
            print(f"  {quant:<10} {human_size(size):>10}  {'cached' if quant in have else ''}".rstrip())
        return
    if not found:
        print(f"no GGUF models cached in {cache.cache_dir()}")
        return
    for c in found:
        print(f"{c['repo']}:{c['quant'] or '?':<10} {human_size(c['size']):>10}  {c['file']}")
