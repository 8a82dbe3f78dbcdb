"""An OpenAI-style server that misbehaves on purpose, for the faults a real server can
show but llama-cpp-python's will not on demand: a stream that never ends and ignores
`max_tokens`. Everything else (`--endpoint` as such) is tested against llama-cpp-python's
real server (tests/servers.py)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EndlessServer:
    """Streams `word ` every `interval` seconds, forever, whatever `max_tokens` says,
    until the client goes away; or, given `reply`, streams that text in a few events and
    ends it (a malformed tool call, an answer that fails the schema, for every retry).
    `requests` counts the completions asked for."""

    def __init__(self, *, word: str = "word ", interval: float = 0.005, reply: str | None = None,
                 pace: float = 0.0, chunk: int = 7, port: int = 0, reasoning: str | None = None) -> None:
        self.word, self.interval, self.reply, self.pace, self.chunk = word, interval, reply, pace, chunk
        self.reasoning = reasoning  # sent first as `reasoning_content` deltas, as vLLM and llama-server do
        self.requests = 0
        self.events_sent = 0  # of a `reply`: how many events were written before the client went away
        self.max_tokens_seen: list[object] = []
        self.stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> EndlessServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                owner.requests += 1
                owner.max_tokens_seen.append(request.get("max_tokens"))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                n = 0
                try:
                    if owner.reply is not None:
                        self._send_whole(owner.reply)
                        return
                    while not owner.stop.is_set():
                        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                                 "choices": [{"index": 0, "delta": {"content": owner.word} if n else
                                              {"role": "assistant", "content": owner.word},
                                              "finish_reason": None}]}
                        data = f"data: {json.dumps(chunk)}\n\n".encode()
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                        n += 1
                        time.sleep(owner.interval)
                except OSError:
                    return  # the client went away: what a real server does too

            def _send_whole(self, text: str) -> None:
                pieces = [text[i:i + owner.chunk] for i in range(0, len(text), owner.chunk)]
                events = [{"role": "assistant", "content": p} if i == 0 else {"content": p}
                          for i, p in enumerate(pieces)]
                thought = owner.reasoning or ""
                events = [{"reasoning_content": thought[i:i + owner.chunk]}
                          for i in range(0, len(thought), owner.chunk)] + events
                for i, (delta, finish) in enumerate([*((d, None) for d in events), ({}, "stop")]):
                    if i and owner.pace:
                        time.sleep(owner.pace)
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    data = f"data: {json.dumps(chunk)}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    owner.events_sent += 1
                data = b"data: [DONE]\n\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n")
                self.wfile.flush()

        return Handler
