"""The OpenAI chat-completions API over the standard library's HTTP: a JSON request, its
server-sent events, and errors that carry their status and headers.

Why not the `openai` package, which this used before: importing it takes 0.45 s on a
2-CPU machine, and a one-shot `hermes ask --endpoint local` against a warm `hermes serve`
paid that on every call, more than a cold load of a small model. What hermes needs of it
is small: POST a body, read `data:` lines, GET /models, and errors it can classify
(retry.py reads `status_code` and `response.headers`, as it read the client's).

One connection per endpoint and thread is kept alive between requests (`batch
--concurrency` runs requests on several threads). Behind a proxy (`https_proxy`,
`http_proxy`, unless `no_proxy` names the host or it is this machine) requests go
through urllib, which honours those, on a new connection each.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

MAX_LINE = 16 << 20  # bytes: one event of a stream (a whole non-streamed answer fits too)


class HttpError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, headers: Any, body: Any) -> None:
        self.status_code = status
        self.response = _Response(status, headers)
        self.body = body
        super().__init__(f"{status}: {self.message}")

    @property
    def message(self) -> str:
        body = self.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            text = inner.get("message") if isinstance(inner, dict) else inner
            if text:
                return str(text).strip().splitlines()[0][:300]
        return str(body or "").strip().splitlines()[0][:300] if body else ""


class NotOpenAI(ValueError):
    """The answer is not the OpenAI API's JSON."""


class _Response:
    def __init__(self, status: int, headers: Any) -> None:
        self.status_code, self.headers = status, headers


class Obj:
    """A JSON object read by attribute, as the API's typed objects were: a field that is
    absent is None."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return wrap(self._data.get(name))

    def __repr__(self) -> str:
        return f"Obj({self._data!r})"


def wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Obj(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


class EventStream:
    """A streamed answer: iterate for its events (Obj), `close()` to stop reading it
    (the server sees the connection close and stops writing)."""

    def __init__(self, response: Any, on_close: Any = None) -> None:
        self.response = response  # .headers, as the client's Stream had
        self._on_close = on_close  # called when the connection cannot be used again
        self._done = False
        self._whole = False  # read to its end: the connection may carry the next request

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        data: list[bytes] = []
        while not self._done:
            line = self.response.readline(MAX_LINE + 1)
            if not line:  # the server ended the stream
                self._done = self._whole = True
                break
            if len(line) > MAX_LINE:
                raise NotOpenAI(f"an event longer than {MAX_LINE >> 20} MB")
            line = line.rstrip(b"\r\n")
            if not line:  # the end of one event
                if data:
                    return self._event(b"\n".join(data))
                continue
            if line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
        if data:
            return self._event(b"\n".join(data))
        raise StopIteration

    def _event(self, data: bytes) -> Any:
        if data == b"[DONE]":
            self._done = True
            try:
                self._whole = not self.response.read()  # the chunked ending; nothing may follow
            except (OSError, http.client.HTTPException):
                self._whole = False
            raise StopIteration
        try:
            obj = json.loads(data)
        except ValueError:
            raise NotOpenAI(f"an event that is not JSON: {data[:100]!r}") from None
        if not isinstance(obj, dict):
            raise NotOpenAI("an event that is not a JSON object")
        if "error" in obj and "choices" not in obj:  # an error written into the stream
            raise HttpError(500, self.response.headers, obj)
        return Obj(obj)

    def close(self) -> None:
        """Stop reading: a stream read to its end leaves its connection for the next
        request; one stopped early (Ctrl-C, an error) closes it, so the server stops."""
        self._done = True
        try:
            self.response.close()
        finally:
            if not self._whole and self._on_close is not None:
                self._on_close()


class Client:
    """One server (its base URL ends in /v1): chat completions and the models list."""

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key, self.timeout = api_key, timeout
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotOpenAI(f"{base_url} is not an http(s) URL")
        self._parts = parts
        self._local = threading.local()  # a kept-alive connection per thread
        proxies = urllib.request.getproxies()
        loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")  # `hermes serve` is never proxied
        self._proxied = parts.scheme in proxies and not loopback and not urllib.request.proxy_bypass(parts.hostname)

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}",
                   "User-Agent": "hermes-cli"}
        if stream:
            headers["Accept"] = "text/event-stream"
        return headers

    def models(self) -> list[str]:
        response = self._send("GET", "/models", None, stream=False)
        body = _json(response.read())
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
            raise NotOpenAI("the models list is not the OpenAI API's")
        return [m["id"] for m in data]

    def stream_chat(self, body: dict[str, Any]) -> EventStream:
        response = self._send("POST", "/chat/completions", body, stream=True)
        return EventStream(response, on_close=self._forget)

    def close(self) -> None:
        self._forget()

    # -- the wire ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool) -> Any:
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        url = self.base_url + path
        if self._proxied:
            request = urllib.request.Request(url, data=data, method=method, headers=self._headers(stream))
            try:
                return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - http(s) only
            except urllib.error.HTTPError as e:
                raise HttpError(e.code, e.headers, _json_or_text(e.read())) from None
            except urllib.error.URLError as e:
                raise (e.reason if isinstance(e.reason, OSError) else ConnectionError(str(e.reason))) from None
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more, fresh
            reused = getattr(self._local, "conn", None) is not None
            conn = self._connection(fresh=attempt == 1)
            try:
                conn.request(method, self._parts.path + path, body=data, headers=self._headers(stream))
                response = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._forget()
                if attempt == 1 or not reused:
                    raise
            except BaseException:  # refused, timed out, Ctrl-C: this connection is done
                self._forget()
                raise
        if response.status >= 400:
            raw = response.read(MAX_LINE)
            self._forget()
            raise HttpError(response.status, response.headers, _json_or_text(raw))
        return response

    def _connection(self, *, fresh: bool) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            port = self._parts.port
            if self._parts.scheme == "https":
                conn = http.client.HTTPSConnection(self._parts.hostname or "", port, timeout=self.timeout)
            else:
                conn = http.client.HTTPConnection(self._parts.hostname or "", port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _forget(self) -> None:
        """Drop this thread's connection (a stream closed early leaves it mid-answer)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise NotOpenAI(f"an answer that is not JSON: {raw[:100]!r}") from None


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
