"""A Hub-compatible HTTP server on 127.0.0.1 for the real huggingface_hub client.

It speaks the parts of the Hub protocol that `HfApi.model_info(files_metadata=True)`
and `hf_hub_download` use: the model-info API, HEAD/GET on `/{repo}/resolve/{rev}/{file}`
with X-Repo-Commit / X-Linked-Etag / X-Linked-Size, byte ranges (resume), and the error
headers the client maps to GatedRepoError / RepositoryNotFoundError. Tests point
HF_ENDPOINT at it. Every request is logged, so a test can assert that none was made.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    files: dict[str, bytes]
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False  # needs the token below
    private: bool = False  # needs the token below; looks absent otherwise
    token: str = "hf_test_token"


@dataclass
class HubState:
    repos: dict[str, Repo] = field(default_factory=dict)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    cut_after: dict[str, int] = field(default_factory=dict)  # file -> bytes, once
    # path suffix -> what the next GETs on it answer: (status, headers); 200 serves normally
    fail: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    answers: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, code: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.server.state.answers.append((self.command, unquote(urlparse(self.path).path), code))
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, code: int, error_code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(code, {"X-Error-Code": error_code, "X-Error-Message": message,
                          "Content-Type": "application/json"}, body)

    def _error_with(self, code: int, headers: dict[str, str]) -> None:
        body = json.dumps({"error": f"injected {code}"}).encode()
        self._send(code, {"Content-Type": "application/json", **headers}, body)

    def _authorised(self, repo: Repo) -> bool:
        return self.headers.get("Authorization") == f"Bearer {repo.token}"

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.server.state.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorised(repo)):
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        if repo.gated and not self._authorised(repo):
            self._error(403, "GatedRepo", "Access to this repo is restricted")
            return None
        return repo

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = unquote(urlparse(self.path).path)
        self.server.state.log.append((self.command, path, self.headers.get("Range")))
        if self.command == "GET":
            for suffix, queue in self.server.state.fail.items():
                if path.endswith(suffix) and queue:
                    code, headers = queue.pop(0)
                    if code != 200:
                        self._error_with(code, headers)
                        return
                    break
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            repo_id = "/".join(parts[2:4])
            repo = self._repo(repo_id)
            if repo is None:
                return
            siblings = [{"rfilename": name, "size": len(data), "blobId": _sha256(data)[:40],
                         "lfs": {"sha256": _sha256(data), "size": len(data),
                                 "pointerSize": 134}}
                        for name, data in repo.files.items()]
            body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": repo.sha,
                               "private": repo.private, "gated": "manual" if repo.gated else False,
                               "siblings": siblings}).encode()
            self._send(200, {"Content-Type": "application/json"}, body)
            return
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, filename = "/".join(parts[:2]), "/".join(parts[4:])
            repo = self._repo(repo_id)
            if repo is None:
                return
            data = repo.files.get(filename)
            if data is None:
                self._error(404, "EntryNotFound", "Entry not found")
                return
            headers = {"X-Repo-Commit": repo.sha, "X-Linked-Etag": f'"{_sha256(data)}"',
                       "X-Linked-Size": str(len(data)), "ETag": f'"{_sha256(data)}"',
                       "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            start = 0
            rng = self.headers.get("Range")
            if rng and self.command == "GET" and rng.startswith("bytes="):
                start = int(rng[len("bytes="):].split("-")[0] or 0)
            body = data[start:]
            code = 206 if start else 200
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            headers["Content-Length"] = str(len(body))
            cut = self.server.state.cut_after.pop(filename, None) if self.command == "GET" else None
            if cut is not None:
                self.server.state.answers.append((self.command, path, code))
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(code, headers, body)
            return
        self._error(404, "NotFound", "no such route")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: HubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class HubServer:
    """Start with `with HubServer(state) as url:`; the server stops on exit."""

    def __init__(self, state: HubState) -> None:
        self.state = state
        self._server = _Server(state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
