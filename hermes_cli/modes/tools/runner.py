"""Running one tool call in a child process, so a tool that hangs can be stopped."""

from __future__ import annotations

import json
import multiprocessing
import sys
from collections.abc import Callable
from typing import Any

from hermes_cli.modes.tools.tool import Tool


def _jsonable(value: Any) -> Any:
    """Results go back as JSON; anything else is stringified."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def _child(fn: Callable[..., Any], arguments: dict[str, Any], conn: Any) -> None:
    try:
        conn.send(("ok", json.dumps(_jsonable(fn(**arguments)))))
    except BaseException as e:  # noqa: BLE001 - reported to the model, not raised here
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def run_call(tool: Tool, arguments: dict[str, Any], timeout: float) -> tuple[bool, Any]:
    """Run one call in a child process, so a tool that hangs can be stopped.

    Returns (ok, content): the result, or an error message for the model.
    """
    assert tool.function is not None
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = multiprocessing.get_context(method)
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(  # type: ignore[attr-defined]
        target=_child, args=(tool.function, arguments, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            proc.kill()
            return False, f"the tool {tool.name} did not finish within {timeout:g} s and was stopped"
        status, payload = parent.recv()
    except EOFError:
        return False, f"the tool {tool.name} exited without a result"
    finally:
        proc.join(5)
        parent.close()
    return (True, json.loads(payload)) if status == "ok" else (False, payload)
