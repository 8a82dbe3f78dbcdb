"""`hermes config` (where the config file is, or open it in $EDITOR) and `hermes roles`."""

from __future__ import annotations

from typing import Annotated

import typer


def config(
    action: Annotated[str, typer.Argument(
        metavar="ACTION", help="path: print where the file is; edit: open it in $EDITOR (created "
        "with every key commented out); show: print it, checked.")] = "path",
) -> None:
    """Print the config file's path, open it in $EDITOR, or show it."""
    import os
    import shlex
    import subprocess

    from hermes_cli.core.config import TEMPLATE, config_path, load_config
    from hermes_cli.errors import HermesError, UsageError

    path = config_path()
    if action == "path":
        print(path)
    elif action == "show":
        load_config(path)  # a bad file is one line naming the key
        print(path.read_text(encoding="utf-8") if path.exists() else f"# {path} does not exist yet")
    elif action == "edit":
        if not path.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(TEMPLATE, encoding="utf-8")
            except OSError as e:
                raise UsageError(f"cannot create {path}: {e.strerror or e}") from None
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        try:
            code = subprocess.call([*shlex.split(editor), str(path)])
        except OSError as e:
            raise UsageError(f"cannot start the editor {editor!r}: {e.strerror or e}",
                             hint="set $EDITOR") from None
        if code:
            raise HermesError(f"the editor {editor!r} exited with status {code}; {path} was not checked")
        load_config(path)  # say now, not at the next chat, if the edit broke it
    else:
        raise UsageError(f"unknown action {action!r}: path, edit or show")


def roles() -> None:
    """List the roles in the config file (use one with --role NAME or /role NAME)."""
    from hermes_cli.core.config import config_path, load_config

    cfg = load_config()
    if not cfg.roles:
        print(f"no roles in {cfg.path or config_path()}; add [roles.NAME] tables (hermes config edit)")
        return
    for name, role in cfg.roles.items():
        parts = []
        if role.model:
            parts.append(f"model {role.model}")
        if role.schema is not None:
            parts.append("schema")
        if role.tools:
            parts.append(f"{len(role.tools)} tools file(s)")
        if role.sampling:
            parts.append(", ".join(f"{k}={v}" for k, v in role.sampling.items()))
        system = (role.system or "").strip().splitlines()[0][:60] if role.system else ""
        print(f"{name}: {system}" + (f"  [{'; '.join(parts)}]" if parts else ""))
