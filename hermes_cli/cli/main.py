"""The entry point: run the Typer app and turn every failure into one line and an exit
status. This is the only place that catches errors for display.

The exit statuses are one table, errors.EXIT_CODES (shown at the end of every
command's --help, and in the README).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from hermes_cli import env
from hermes_cli.errors import INTERRUPTED_EXIT_CODE, HermesError, OutputClosed

F = TypeVar("F", bound=Callable[..., Any])


def guard_stdout(fn: F) -> F:
    """Turn a closed stdout into OutputClosed before typer maps it to a plain exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            raise OutputClosed("stdout was closed") from None

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: int, hint: str | None = None) -> int:
    print(f"Error: {message}", file=sys.stderr)
    if hint:
        print(f"Hint: {hint}", file=sys.stderr)
    return code


def undecodable_argument(argv: list[str]) -> str | None:
    """Why an argument cannot be used, or None. Bytes that are not UTF-8 reach Python as
    lone surrogates (surrogateescape) and failed deep inside tokenizing as a
    UnicodeEncodeError (exit 1). A path may hold such bytes (Linux file names are bytes):
    an argument, or an `--option=value`'s value, naming a file that exists is let through."""
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
            continue
        except UnicodeEncodeError as e:
            bad = e.start
        value = arg.partition("=")[2] if arg.startswith("--") and "=" in arg else arg
        if os.path.lexists(os.fsencode(value)):
            continue
        raw = os.fsencode(arg)
        shown = raw.decode("utf-8", "backslashreplace")
        return (f"argument {position} ({shown!r}) is not UTF-8 text (byte 0x{ord(arg[bad]) - 0xDC00:02x} at "
                f"offset {len(arg[:bad].encode('utf-8', 'surrogateescape'))})")
    return None


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status, never raising (except with HERMES_DEBUG)."""
    from hermes_cli.cli.app import app

    problem = undecodable_argument(sys.argv[1:] if argv is None else argv)
    if problem is not None:
        return _fail(problem, 2, "pass text as UTF-8 (iconv -f latin1 -t utf-8 converts it)")

    # typer >= 0.24 vendors click (typer._click): find its base class, not click's.
    click_error: type[Exception] = next(
        c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        result = app(args=argv, prog_name="hermes", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == INTERRUPTED_EXIT_CODE:  # typer turns Ctrl-C into Exit(130)
            print("\nInterrupted.", file=sys.stderr)
        return code
    except OutputClosed:
        # The reader went away (`| head`): quietly stop, as a SIGPIPE death would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OutputClosed.exit_code
    except HermesError as e:
        if env.debug():
            raise
        return _fail(str(e), e.exit_code, e.hint)
    except typer.Abort as e:  # click turns Ctrl-C (and EOF) into Abort
        if isinstance(e.__context__, EOFError):
            return 1
        print("Interrupted.", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except click_error as e:
        e.show()  # type: ignore[attr-defined]
        return int(e.exit_code)  # type: ignore[attr-defined]
    except Exception as e:  # a bug: one line, and a way to see the traceback
        if env.debug():
            raise
        return _fail(f"{type(e).__name__}: {e}", 1, "set HERMES_DEBUG=1 to see the traceback")


def main() -> None:
    sys.exit(run())
