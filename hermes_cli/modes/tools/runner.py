"""Running one tool call in a child process, so a tool that hangs can be stopped.

Linux forks (the child has the function already). Elsewhere processes are spawned: the
child starts a fresh interpreter, which cannot unpickle a function from a module that
exists only in the parent (the user's tools file is loaded under a private name), so
the child is given the file and the function's name and imports the file itself.
HERMES_TOOL_START_METHOD=spawn forces that path on Linux (the suite runs it too).

Each run is its own process group, and the whole group is stopped when the run ends
(SIGTERM, then SIGKILL after a grace period): a tool that starts a child (`subprocess`,
a shell pipeline) and hangs past `--tool-timeout` left that child running after hermes
exited. Its own group also keeps the terminal's Ctrl-C for hermes, which stops the run.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from hermes_cli import env
from hermes_cli.modes.tools.tool import Tool


def _jsonable(value: Any) -> Any:
    """Results go back as JSON; anything else is stringified."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


_GRACE = 1.0  # seconds a stopped tool's group has between SIGTERM and SIGKILL


def _child(fn: Callable[..., Any] | tuple[str, str], arguments: dict[str, Any], conn: Any) -> None:
    _own_group()
    try:
        os.dup2(2, 1)  # the tool's prints go to our stderr, never into our stdout
        sys.stdout = sys.stderr
    except OSError:
        pass
    try:
        if isinstance(fn, tuple):
            fn = _function_from_file(*fn)
        conn.send(("ok", json.dumps(_jsonable(fn(**arguments)))))
    except BaseException as e:  # noqa: BLE001 - reported to the model, not raised here
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def _own_group() -> None:
    """Make the calling process the leader of a new process group (both sides call it:
    whichever runs first wins the race against an early stop)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpgid(0, 0)


def _stop_group(proc: Any) -> None:
    """End the run's process group, the tool and whatever it started: SIGTERM, then
    SIGKILL for what is left after the grace period. Reaps the tool."""
    pid = proc.pid
    if pid is None or not hasattr(os, "killpg"):
        proc.kill()
        proc.join(5)
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + _GRACE
    proc.join(_GRACE)
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.02)  # the tool is reaped; its children may still be exiting
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    proc.join(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _function_from_file(path: str, name: str) -> Callable[..., Any]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("hermes_user_tools", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hermes_user_tools"] = module
    spec.loader.exec_module(module)
    fn = getattr(module, name)
    assert callable(fn)
    return fn


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """The user's tool code runs with its stdout on our stderr, Python's and the file
    descriptor's (a C library or `os.write(1, ...)` too): what a tools file prints can
    never land in `ask`'s answer or `batch`'s JSONL on stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no fd 1 (a closed stdout): Python's stream is all there is
        saved = -1
    old, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stdout = old
        if saved >= 0:
            os.dup2(saved, 1)
            os.close(saved)


def run_call(tool: Tool, arguments: dict[str, Any], timeout: float) -> tuple[bool, Any]:
    """Run one call in a child process, so a tool that hangs can be stopped.

    Returns (ok, content): the result, or an error message for the model. A remote
    tool (an MCP server's) is called where it lives, under the same timeout.
    """
    if tool.remote is not None:
        return tool.remote(arguments, timeout)
    assert tool.function is not None
    method = env.tool_start_method() or ("fork" if sys.platform.startswith("linux") else "spawn")
    ctx = multiprocessing.get_context(method)
    target: Any = tool.function if method == "fork" or tool.origin is None else tool.origin
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(  # type: ignore[attr-defined]
        target=_child, args=(target, arguments, child), daemon=True)
    proc.start()
    with contextlib.suppress(OSError):  # the child does it too (spawn: only the child can)
        os.setpgid(proc.pid, proc.pid)
    child.close()
    try:
        if not parent.poll(timeout):
            return False, f"the tool {tool.name} did not finish within {timeout:g} s and was stopped"
        status, payload = parent.recv()
    except EOFError:
        return False, f"the tool {tool.name} exited without a result"
    finally:
        _stop_group(proc)  # timed out, interrupted or done: nothing it started outlives the run
        parent.close()
    return (True, json.loads(payload)) if status == "ok" else (False, payload)
