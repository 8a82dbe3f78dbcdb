"""One MCP server: started over stdio (a command) or reached over Streamable HTTP (a
URL), its tools listed, calls forwarded, stopped at the end (its process included).

The SDK's context managers (the transport, the session) must be entered and left in
one task, so each server lives in one long task on the private loop: it connects,
reports ready, then waits to be told to stop; calls run as other tasks on the session.
A server's stderr goes to a log file (never the chat's screen), and its last line is
quoted when the server fails. So does the SDK's own logging about it (a server that
prints plain text on stdout made the SDK log a pydantic traceback per line on our
stderr). A cache folder that cannot be written costs the log (a temporary file takes
its place), never the server's tools.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hermes_cli import env
from hermes_cli.mcp_servers.loop import LoopThread
from hermes_cli.mcp_servers.spec import ServerSpec


@dataclass(frozen=True)
class RemoteTool:
    """A tool as the server lists it."""

    name: str
    description: str
    input_schema: dict[str, Any]


class McpServer:
    """One server's connection; `state` is "stopped", "ready", "failed" or "crashed"."""

    def __init__(self, spec: ServerSpec, loop: LoopThread) -> None:
        self.spec = spec
        self._loop = loop
        self.state = "stopped"
        self.error: str | None = None
        self.tools: list[RemoteTool] = []
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._task: concurrent.futures.Future[None] | None = None
        self._main_task: asyncio.Task[None] | None = None  # the same, as the loop sees it
        safe = re.sub(r"[^\w.-]", "_", spec.name)
        self.log_path = env.cache_dir() / "mcp" / f"{safe}.log"

    @property
    def name(self) -> str:
        return self.spec.name

    # -- starting and stopping -------------------------------------------------------------

    def begin(self) -> concurrent.futures.Future[list[RemoteTool]]:
        """Start connecting; the future gives the tools once the server is ready."""
        ready: concurrent.futures.Future[list[RemoteTool]] = concurrent.futures.Future()
        self.state, self.error = "starting", None
        self._task = self._loop.submit(self._main(ready))
        return ready

    def finish_start(self, ready: concurrent.futures.Future[list[RemoteTool]], timeout: float) -> bool:
        """Wait for `begin`'s connection; False (and `error` set) when it failed."""
        try:
            self.tools = ready.result(timeout)
            self.state = "ready"
            return True
        except concurrent.futures.TimeoutError:
            self._fail("failed", f"did not start within {timeout:g} s")
        except Exception as e:  # noqa: BLE001 - any failure to start is one line about this server
            self._fail("failed", _why(e))
        self.stop(graceful=0.0)  # it never came up: nothing to say goodbye to
        return False

    async def _main(self, ready: concurrent.futures.Future[list[RemoteTool]]) -> None:
        from contextlib import AsyncExitStack

        from mcp import ClientSession

        self._stop = asyncio.Event()
        self._main_task = asyncio.current_task()
        log: TextIO | None = None
        try:
            async with AsyncExitStack() as stack:
                if self.spec.url is not None:
                    from mcp.client.streamable_http import streamable_http_client

                    read, write = await stack.enter_async_context(streamable_http_client(self.spec.url))
                else:
                    from mcp.client.stdio import StdioServerParameters, stdio_client

                    log = stack.enter_context(self._open_log())
                    stack.enter_context(_sdk_logging_to(log))
                    params = StdioServerParameters(command=self.spec.command or "", args=self.spec.args,
                                                   env=self.spec.env or None)
                    read, write = await stack.enter_async_context(stdio_client(params, errlog=log))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await session.list_tools()
                self._session = session
                if not ready.done():
                    ready.set_result([RemoteTool(t.name, t.description or "", dict(t.input_schema or {}))
                                      for t in listed.tools])
                await self._stop.wait()
        except BaseException as e:  # noqa: BLE001 - reported through `ready` or the state
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else RuntimeError("cancelled"))
            elif self.state == "ready":
                self._fail("crashed", _why(e))
            if not isinstance(e, Exception):
                raise
        finally:
            self._session = None

    @contextlib.contextmanager
    def _open_log(self) -> Any:
        """The server's log file, or a temporary one when the cache cannot hold it (then
        `log_path` names that, for the last words quoted on failure)."""
        log: Any
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError:
            try:
                log = tempfile.NamedTemporaryFile("w", encoding="utf-8", prefix="hermes-mcp-",  # noqa: SIM115
                                                  suffix=".log", delete=True)
                self.log_path = Path(log.name)
            except OSError:
                log = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
        with log:
            yield log

    def stop(self, graceful: float = 5.0) -> None:
        """Leave the session and end the process: ask the server task to finish, and
        cancel it after `graceful` seconds; either way wait until its clean-up (the SDK
        closes the server's stdin, then terminates its process tree) is done."""
        if self._task is None:
            return
        try:
            self._loop.run(self._shutdown(graceful), graceful + 30)
        except BaseException:  # noqa: BLE001 - it is going away either way
            pass
        self._task = None
        if self.state in ("ready", "starting"):
            self.state = "stopped"

    async def _shutdown(self, graceful: float) -> None:
        task = self._main_task
        if task is None or task.done():
            return
        if self._stop is not None:
            self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), graceful)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - then it is cancelled
            task.cancel()
        try:
            await task
        except BaseException:  # noqa: BLE001 - its failure is recorded; its clean-up has run
            pass

    # -- calls --------------------------------------------------------------------------------

    def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> tuple[bool, Any]:
        """(ok, content) for the model: the result, or why there is none (the server's
        error, a timeout, or the server gone)."""
        if self.state != "ready" or self._session is None:
            return False, f"the MCP server {self.name} is not running ({self.error or self.state})"
        try:
            result = self._loop.run(self._session.call_tool(tool, arguments, read_timeout_seconds=timeout),
                                    timeout + 1)
        except concurrent.futures.TimeoutError:
            return self._timed_out(tool, timeout)
        except Exception as e:  # noqa: BLE001 - the server's failure is the model's tool error
            if "timed out" in str(e):  # the SDK's own read timeout
                return self._timed_out(tool, timeout)
            if self._task is not None and self._task.done() or "closed" in str(e).lower():
                self._fail("crashed", _why(e))
                return False, f"the MCP server {self.name} stopped while running {tool}"
            return False, f"the MCP server {self.name} failed to run {tool}: {_why(e)}"
        return _content(result)

    def _timed_out(self, tool: str, timeout: float) -> tuple[bool, str]:
        self.error = f"{tool} did not answer within {timeout:g} s"
        return False, f"the MCP server {self.name} did not answer {tool} within {timeout:g} s"

    def probe(self, timeout: float = 3.0) -> None:
        """Ask a ready server whether it is still there (an MCP ping): a process that was
        killed leaves the session looking ready until the next call, and `/mcp` must not
        report it so."""
        if self.state != "ready" or self._session is None:
            return
        try:
            self._loop.run(self._session.send_ping(), timeout)
        except BaseException as e:  # noqa: BLE001 - any way it fails, it is gone
            if isinstance(e, KeyboardInterrupt):
                raise
            self._fail("crashed", f"it does not answer ({_why(e) if str(e) else 'no answer'})")

    def _fail(self, state: str, why: str) -> None:
        self.state = state
        tail = self.stderr_tail()
        self.error = why + (f" (its last words: {tail})" if tail and tail not in why else "")

    def stderr_tail(self) -> str:
        try:
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""


@contextlib.contextmanager
def _sdk_logging_to(log: TextIO) -> Any:
    """While a stdio server runs, what the SDK logs about it (a stdout line that is not
    JSON-RPC, with its traceback) goes to the server's log file, not to our stderr
    (Python's last-resort handler printed it there). Records at WARNING and above."""
    handler = logging.StreamHandler(log)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger("mcp")
    root.addHandler(handler)
    before = root.propagate
    root.propagate = False
    try:
        yield
    finally:
        root.removeHandler(handler)
        if not root.handlers:
            root.propagate = before


def _why(error: BaseException) -> str:
    """One line for an exception, however deeply the SDK grouped it."""
    while getattr(error, "exceptions", None):  # an (anyio) exception group
        error = error.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(error, FileNotFoundError):
        return f"cannot start it: {error.strerror or 'no such program'}: {error.filename or ''}".rstrip(": ")
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if type(error).__name__ in text else f"{type(error).__name__}: {text}"


def _content(result: Any) -> tuple[bool, Any]:
    """A CallToolResult as the tool response: structured content as JSON, else the text;
    an embedded resource by its URI with its text; other content (images, blobs, links)
    named by URI or type, not inlined."""
    parts = []
    for item in result.content or []:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind == "resource":  # an embedded resource: the URI lives on .resource
            resource = item.resource
            text = getattr(resource, "text", None)
            parts.append(f"[resource {resource.uri}]" + (f"\n{text}" if isinstance(text, str) else
                                                         f" ({getattr(resource, 'mime_type', None) or 'binary'})"))
        else:
            parts.append(f"[{kind} content: {getattr(item, 'uri', None) or getattr(item, 'mime_type', None) or ''}]")
    text = "\n".join(parts)
    if result.is_error:
        return False, text or "the tool reported an error"
    if result.structured_content is not None:
        return True, result.structured_content
    return True, text
