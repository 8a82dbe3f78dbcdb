"""Inputs that are not files: a web page (`-f https://…`) and a command's output
(`-f '!git diff'`), read in bounded time and size and handed to core/attachments.py as
text, like a file's.

A page: http(s) only, redirects followed to http(s) only (at most 5), no credentials or
cookies sent anywhere (urllib sends none of its own), the whole read within
FETCH_SECONDS and 8 MiB, text types only; HTML is reduced to its readable text (scripts,
styles and tags dropped; block elements become lines). A command: run in the user's
shell only after the person at the terminal said yes (the front end asks; batch lines
never run commands), within COMMAND_SECONDS and 8 MiB of output, its process group
stopped on the way out; a command that fails is an error naming its status.
"""

from __future__ import annotations

import html.parser
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from hermes_cli.errors import ServerError, UsageError

MAX_BYTES = 8 * 1024 * 1024
FETCH_SECONDS = 30.0
COMMAND_SECONDS = 60.0
_TEXT_TYPES = ("application/json", "application/xml", "application/xhtml+xml", "application/javascript",
               "application/x-yaml", "application/yaml", "application/toml")


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def is_command(spec: str) -> bool:
    return spec.startswith("!") and len(spec.strip()) > 1


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not is_url(newurl):
            raise ServerError(f"{req.full_url} redirects to {newurl}: only http(s) is followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_url(url: str) -> str:
    """The page's text (HTML reduced to what a reader sees)."""
    opener = urllib.request.build_opener(_Redirects())
    request = urllib.request.Request(url, headers={"User-Agent": "hermes-cli",
                                                   "Accept": "text/html, text/plain;q=0.9, */*;q=0.5"})
    deadline = time.monotonic() + FETCH_SECONDS
    try:
        with opener.open(request, timeout=FETCH_SECONDS) as response:
            kind = response.headers.get_content_type()
            charset = response.headers.get_content_charset() or "utf-8"
            if not (kind.startswith("text/") or kind in _TEXT_TYPES):
                raise UsageError(f"{url} is {kind}, not text")
            data = _read_bounded(lambda _left: response.read1(65536), deadline,  # what has come: checked as it drips
                                 ServerError(f"{url} took longer than {FETCH_SECONDS:g} s"),
                                 UsageError(f"{url} is larger than {MAX_BYTES >> 20} MB"))
    except urllib.error.HTTPError as e:
        raise ServerError(f"{url} answered {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise ServerError(f"cannot fetch {url}: {e.reason}") from None
    except (OSError, ValueError) as e:  # a timeout, a reset, a malformed URL
        raise ServerError(f"cannot fetch {url}: {e}") from None
    try:
        text = data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        text = data.decode("utf-8", "replace")
    return readable_text(text) if "html" in kind else text


class _Reader(html.parser.HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "svg"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
              "header", "footer", "pre", "blockquote", "table", "ul", "ol", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def readable_text(page: str) -> str:
    reader = _Reader()
    reader.feed(page)
    reader.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(reader.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def command_output(command: str) -> str:
    """What `command` writes on stdout, run in the user's shell (asked first: the caller's),
    read as it comes: past 8 MiB or COMMAND_SECONDS it is stopped (`yes` never fills memory)."""
    import select
    import tempfile

    shell = os.environ.get("SHELL") or "/bin/sh"
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen([shell, "-c", command], stdout=subprocess.PIPE, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            raise UsageError(f"cannot start {shell}: {e.strerror or e}") from None
        out = proc.stdout
        assert out is not None
        deadline = time.monotonic() + COMMAND_SECONDS

        def read(left: float) -> bytes | None:
            ready, _, _ = select.select([out], [], [], left)
            return os.read(out.fileno(), 65536) if ready else None

        try:
            data = _read_bounded(read, deadline,
                                 UsageError(f"`{command}` ran longer than {COMMAND_SECONDS:g} s: stopped"),
                                 UsageError(f"`{command}` wrote more than {MAX_BYTES >> 20} MB: stopped"))
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise UsageError(f"`{command}` ran longer than {COMMAND_SECONDS:g} s: stopped") from None
        finally:
            out.close()
            if proc.poll() is None:
                _stop(proc)
        err.seek(0)
        said = err.read(65536).decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0:
        raise UsageError(f"`{command}` failed (exit {proc.returncode})" + (f": {said[-1][:200]}" if said else ""))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"`{command}` wrote bytes that are not UTF-8 text (byte {e.start})") from None


def _read_bounded(read: Callable[[float], bytes | None], deadline: float, too_slow: Exception,
                  too_big: Exception) -> bytes:
    """What `read(seconds left)` gives (None: nothing yet) until it gives b"", within the
    monotonic `deadline` and MAX_BYTES: a page or a command that never ends is stopped."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise too_slow
        chunk = read(left)
        if chunk is None:
            continue
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BYTES:
            raise too_big
        chunks.append(chunk)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()
