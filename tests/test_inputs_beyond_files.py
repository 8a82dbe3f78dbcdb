"""`-f https://…` and `-f '!command'` (and `/read`, `@https://…`, batch `"files"`): a page's
readable text and a command's output in the prompt, bounded, and a command run only on
a yes typed at the terminal."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PAGE = (b"<html><head><title>Tides</title><style>body{color:red}</style><script>var secret='js';</script>"
        b"</head><body><h1>High tide</h1><p>At 6 &amp; 18 o'clock.</p><div>Low tide between.</div></body></html>")


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        routes = {
            "/page.html": (200, "text/html; charset=utf-8", PAGE),
            "/notes.txt": (200, "text/plain", b"plain notes\n"),
            "/image.png": (200, "image/png", b"\x89PNG\r\n"),
            "/huge.txt": (200, "text/plain", b"x" * (9 << 20)),
        }
        if self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        if self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"drip\n")
                self.wfile.flush()
                time.sleep(0.2)
            return
        status, kind, body = routes.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def ask(exe: list[str], model, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, "ask", "-m", str(model), "--show-prompt", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, start_new_session=True)


def test_a_page_is_its_readable_text_without_scripts_or_styles(hermes_exe, models) -> None:
    with pages() as url:
        proc = ask(hermes_exe, models["hi"], "-f", f"{url}/page.html", "-f", f"{url}/notes.txt", "When?")
    assert proc.returncode == 0, proc.stderr
    assert "High tide" in proc.stdout and "At 6 & 18 o'clock." in proc.stdout and "Low tide between." in proc.stdout
    assert f"File: {url}/page.html" in proc.stdout and "plain notes" in proc.stdout
    assert "secret" not in proc.stdout and "color:red" not in proc.stdout and "<h1>" not in proc.stdout


@pytest.mark.parametrize(("path", "code", "said"), [
    ("/image.png", 2, "is image/png, not text"),
    ("/huge.txt", 2, "is larger than 8 MB"),
    ("/missing", 5, "answered 404"),
    ("/to-file", 5, "file:///etc/passwd"),  # a redirect out of http(s) is never followed
])
def test_a_page_that_cannot_be_prompt_text_is_one_line(hermes_exe, models, path, code, said) -> None:
    with pages() as url:
        proc = ask(hermes_exe, models["hi"], "-f", url + path, "x")
    assert proc.returncode == code, proc.stderr
    assert said in proc.stderr and "Traceback" not in proc.stderr
    assert "root:" not in proc.stdout + proc.stderr


def test_a_page_that_never_ends_is_cut_at_the_deadline(monkeypatch) -> None:
    from hermes_cli.core import fetched
    from hermes_cli.errors import ServerError

    monkeypatch.setattr(fetched, "FETCH_SECONDS", 1.0)
    with pages() as url:
        started = time.monotonic()
        with pytest.raises(ServerError, match="took longer than 1 s"):
            fetched.fetch_url(url + "/drip")
    assert time.monotonic() - started < 5


def test_a_commands_output_is_attached_only_with_a_yes(hermes_exe, models) -> None:
    refused = ask(hermes_exe, models["hi"], "-f", "!echo secret-$((6*7))", "x")
    assert refused.returncode == 2 and "was not run" in refused.stderr  # no terminal to say yes
    allowed = ask(hermes_exe, models["hi"], "--yes", "-f", "!echo secret-$((6*7))", "x")
    assert allowed.returncode == 0, allowed.stderr
    assert "File: output of `echo secret-$((6*7))`" in allowed.stdout and "secret-42" in allowed.stdout


@pytest.mark.parametrize(("command", "said"), [("false", "failed (exit 1)"), ("yes", "wrote more than 8 MB")])
def test_a_command_that_fails_or_never_stops_is_one_line_in_bounded_time(hermes_exe, models, command, said) -> None:
    started = time.monotonic()
    proc = ask(hermes_exe, models["hi"], "--yes", "-f", f"!{command}", "x")
    assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert time.monotonic() - started < 60


def test_batch_lines_never_run_commands_but_read_pages(hermes_exe, models, tmp_path) -> None:
    with pages() as url:
        lines = (json.dumps({"id": "cmd", "prompt": "x", "files": ["!touch ran.txt"]}) + "\n"
                 + json.dumps({"id": "page", "prompt": "x", "files": [f"{url}/notes.txt"]}) + "\n")
        proc = subprocess.run([*hermes_exe, "batch", "-", "-m", str(models["hi"]), "-q"], input=lines,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    records = {r["id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert "commands are not run from here" in records["cmd"]["error"]
    assert records["page"]["output"] == "Hi!"
    assert not (tmp_path / "ran.txt").exists()


def test_chat_read_asks_on_the_terminal_before_running_a_command(hermes_exe, models, tmp_path) -> None:
    from tests.test_chat_terminal import Terminal, env_for

    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env_for(tmp_path))
    term.expect(r"Ctrl-D to quit")
    term.send("/read !echo from-the-shell\r")
    term.expect(r"echo from-the-shell[\s\S]*\?")  # asked, as a call would be
    term.send("y\r")
    term.expect(r"output of `echo from-the-shell`")
    term.send("/exit\r")
    assert term.wait() == 0
