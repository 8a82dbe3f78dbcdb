"""Talking to a served engine (vLLM, llama.cpp's llama-server, llama-cpp-python's server,
`hermes serve`, anything that speaks the OpenAI chat-completions API), through
served/http.py (the standard library's HTTP and an event-stream reader: the `openai`
package's import alone cost a one-shot answer 0.45 s). Retries are ours
(served/pool.py), so one policy covers one endpoint or several.

The API key comes from an environment variable (`--api-key-env`, default
OPENAI_API_KEY); it is never printed, logged or saved. Local servers that want no key
get a placeholder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hermes_cli.errors import ServerError, keep_secret

NO_KEY = "sk-no-key-required"
DEFAULT_TIMEOUT = 600.0  # a long reply on a busy server; the connection has its own


@dataclass
class Endpoint:
    """One server: its base URL (…/v1) and how to reach it."""

    url: str
    key_env: str = "OPENAI_API_KEY"
    timeout: float = DEFAULT_TIMEOUT
    _client: Any = field(default=None, repr=False)
    # What this server turned out to accept for JSON mode: "json_schema" (OpenAI's
    # structured outputs), "json_object" (llama-cpp-python's form), or "none".
    json_format: str | None = None

    @property
    def base_url(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"

    def client(self) -> Any:
        if self._client is None:
            from hermes_cli.served.http import Client

            keep_secret(os.environ.get(self.key_env))  # a server that echoes it: redacted
            self._client = Client(self.base_url, os.environ.get(self.key_env) or NO_KEY, self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def served_models(endpoint: Endpoint) -> list[str]:
    """The model names the server serves (`GET /v1/models`)."""
    try:
        return sorted(endpoint.client().models())
    except Exception as e:  # noqa: BLE001 - one line for every way it fails
        raise translate(e, endpoint) from None


def translate(e: BaseException, endpoint: Endpoint, model: str | None = None) -> ServerError:
    """One clear line for each way a server can fail us (the key is never echoed)."""
    import http.client

    from hermes_cli.served.http import HttpError, NotOpenAI

    where = endpoint.base_url
    if isinstance(e, ServerError):
        return e
    if isinstance(e, TimeoutError):
        return ServerError(f"{where} did not answer within {endpoint.timeout:g} s")
    if isinstance(e, HttpError):
        if e.status_code in (401, 403):
            have = "set" if os.environ.get(endpoint.key_env) else "not set"
            return ServerError(f"{where} refused the request ({e.status_code}): check the API key "
                               f"in ${endpoint.key_env} ({have})", hint="--api-key-env NAME picks the variable")
        if e.status_code == 404 and model is not None:
            try:
                names = served_models(endpoint)
            except ServerError:
                names = []
            listing = f"; it serves: {', '.join(names)}" if names else ""
            return ServerError(f"{where} does not serve the model {model!r}{listing}",
                               hint="pick one with --model NAME (hermes models --endpoint URL lists them)")
        return ServerError(f"{where} answered {e.status_code}: {e.message}")
    if isinstance(e, (NotOpenAI, ValueError)):
        return ServerError(f"{where} answered something that is not the OpenAI API's JSON ({_cause(e)})")
    if isinstance(e, (OSError, http.client.HTTPException)):
        return ServerError(f"cannot reach the server at {where} ({_cause(e)})", hint="is it running? check --endpoint")
    return ServerError(f"{where}: {type(e).__name__}: {_cause(e)}")


def _cause(e: BaseException) -> str:
    cause = e.__cause__ or e.__context__
    text = str(cause or e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
