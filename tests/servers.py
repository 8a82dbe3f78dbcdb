"""Real OpenAI-compatible servers for the --endpoint tests: llama-cpp-python's own server
(a separate process serving the suite's tiny GGUFs), and a small proxy in front of it
that injects faults (429 with Retry-After, 500, a connection reset mid-stream)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """`python -m llama_cpp.server` with a config file: one process, several models by
    alias (loaded when asked for). Requests queue (no interrupting one for the next)."""

    def __init__(self, models: dict[str, Path], tmp: Path, *, api_key: str | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.config = tmp / f"server-{self.port}.json"
        settings = {"host": "127.0.0.1", "port": self.port, "interrupt_requests": False,
                    "models": [{"model": str(p), "model_alias": alias, "n_ctx": 4096, "verbose": False}
                               for alias, p in models.items()]}
        if api_key:
            settings["api_key"] = api_key
        self.config.write_text(json.dumps(settings))
        self.log = tmp / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LlamaServer:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file",
                                          str(self.config)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:  # polling the server's readiness, not waiting for time to pass
            try:
                urllib.request.urlopen(self.url + "/v1/models", timeout=1).read()
                return self
            except OSError as e:
                if "401" in str(e):
                    return self  # up, and wants its key
                assert self.proc.poll() is None, self.log.read_text()[-2000:]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None


@dataclass
class Faults:
    """What the proxy does to the next requests, in order: ("status", code, headers),
    ("echo", code, headers) (an error quoting the Authorization header back),
    ("stream_echo",) (an answer that streams the Authorization header back, 3 characters
    per event), ("reset",) after the response starts, or ("pass",)."""

    plan: list[tuple] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # what it did to each completion request
    bodies: list[bytes] = field(default_factory=list)  # each completion request's body, as received


class FaultProxy:
    def __init__(self, upstream_port: int, faults: Faults) -> None:
        self.faults = faults
        handler = _handler(upstream_port, faults)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(upstream_port: int, faults: Faults) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            completion = self.path.endswith("/completions")
            action = faults.plan.pop(0) if (faults.plan and completion) else ("pass",)
            if completion:
                faults.seen.append(action[0] if action[0] != "status" else str(action[1]))
                faults.bodies.append(body or b"")
            if action[0] in ("status", "echo"):
                # "echo": a server that quotes the request's Authorization header back
                text = (f"rejected request from {self.headers.get('Authorization')}" if action[0] == "echo"
                        else f"injected {action[1]}")
                payload = json.dumps({"error": {"message": text}}).encode()
                self.send_response(action[1])
                for k, v in {"Content-Type": "application/json", **action[2]}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if action[0] == "stream_echo":
                said = f"you sent {self.headers.get('Authorization')} to me"
                events = [{"choices": [{"index": 0, "delta": {"content": said[i:i + 3]}, "finish_reason": None}]}
                          for i in range(0, len(said), 3)]
                events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                payload = b"".join(b"data: " + json.dumps({"id": "x", "object": "chat.completion.chunk",
                                                           "created": 0, "model": "hi", **e}).encode() + b"\n\n"
                                   for e in events) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            while chunk := resp.read1(65536):
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                if action[0] == "reset" and sent:
                    self.connection.shutdown(socket.SHUT_RDWR)  # cut mid-stream
                    break
            conn.close()
            self.close_connection = True

        do_GET = _forward
        do_POST = _forward

    return Handler


def env_without_key() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
