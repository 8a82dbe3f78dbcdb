"""`--endpoint`: ask, chat and batch against a real OpenAI-compatible server the tests
start (llama-cpp-python's own, serving the suite's tiny models), with faults injected
by a proxy in front of it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import children
from tests.servers import FaultProxy, Faults, LlamaServer


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    srv = LlamaServer({"hi": models["hi"], "endless": models["endless"], "caller": models["caller"],
                       "random": models["random"]}, tmp).start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch) -> None:
    monkeypatch.setenv("HERMES_RETRY_BASE_SECONDS", "0.01")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("HERMES_ENDPOINT", raising=False)


def hermes(exe, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, **kw)


def test_ask_streams_text_from_the_server_with_its_stats(hermes_exe, server) -> None:
    proc = hermes(hermes_exe, "ask", "hello", "--endpoint", server.url, "--model", "hi", "--stats")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hi!\n"
    assert "time to first token" in proc.stderr
    # llama-cpp-python's server sends no usage: said so, not "prompt 0 tokens" (issue 21, row 15)
    assert "prompt tokens unknown (the server sent no usage)" in proc.stderr
    assert "reply ~3 (stream events) tokens" in proc.stderr


def test_ask_json_is_enforced_by_the_server_and_validated_here(hermes_exe, server) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    proc = hermes(hermes_exe, "ask", "x", "--endpoint", server.url, "--model", "random", "--schema",
                  json.dumps(schema), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout)["n"], int)


def test_ask_with_a_forced_tool_call_runs_it_here(hermes_exe, server, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "t.py").write_text(
        f"def note(n: int) -> str:\n    open({str(marker)!r}, 'w').write(str(n))\n    return 'noted'\n")
    proc = hermes(hermes_exe, "ask", "go", "--endpoint", server.url, "--model", "hi", "--tools",
                  str(tmp_path / "t.py"), "--tool-choice", "note", "--yes", "-v")
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text().lstrip("-").isdigit()  # the call had an integer argument
    assert "← note noted" in proc.stderr and proc.stdout == "Hi!\n"


def test_show_prompt_shows_the_request_without_the_key(hermes_exe, server) -> None:
    proc = hermes(hermes_exe, "ask", "x", "--endpoint", server.url, "--model", "hi", "--json",
                  "--show-prompt", env={**os.environ, "OPENAI_API_KEY": "sk-secret-123"})
    body = json.loads(proc.stdout)
    assert body["model"] == "hi" and body["messages"][0]["role"] == "system"
    assert "answers in JSON" in body["messages"][0]["content"]
    assert "sk-secret-123" not in proc.stdout + proc.stderr


def test_unknown_model_lists_the_served_ones(hermes_exe, server) -> None:
    proc = hermes(hermes_exe, "ask", "x", "--endpoint", server.url, "--model", "nope")
    assert proc.returncode == 5 and "Traceback" not in proc.stderr
    assert "does not serve the model 'nope'; it serves: caller, endless, hi, random" in proc.stderr


def test_models_lists_what_an_endpoint_serves(hermes_exe, server) -> None:
    proc = hermes(hermes_exe, "models", "--endpoint", server.url)
    assert proc.stdout.split() == ["caller", "endless", "hi", "random"]


def test_unreachable_server_is_one_line(hermes_exe) -> None:
    proc = hermes(hermes_exe, "ask", "x", "--endpoint", "http://127.0.0.1:9")
    assert proc.returncode == 5 and proc.stderr.startswith("Error: ")
    assert "cannot reach the server at http://127.0.0.1:9/v1" in proc.stderr


def test_a_bad_key_is_refused_without_echoing_it(hermes_exe, models, tmp_path: Path) -> None:
    locked = LlamaServer({"hi": models["hi"]}, tmp_path, api_key="right-key").start()
    try:
        proc = hermes(hermes_exe, "ask", "x", "--endpoint", locked.url, "--api-key-env", "MY_KEY",
                      env={**os.environ, "MY_KEY": "wrong-key-456"})
        assert proc.returncode == 5 and "Traceback" not in proc.stderr
        assert "refused the request (401): check the API key in $MY_KEY (set)" in proc.stderr
        assert "wrong-key-456" not in proc.stderr + proc.stdout
        ok = hermes(hermes_exe, "ask", "x", "--endpoint", locked.url, "--api-key-env", "MY_KEY",
                    env={**os.environ, "MY_KEY": "right-key"})
        assert ok.returncode == 0 and ok.stdout == "Hi!\n"
    finally:
        locked.stop()


def test_injected_429_500_and_a_reset_are_retried(hermes_exe, server) -> None:
    faults = Faults([("status", 429, {"Retry-After": "0"}), ("status", 500, {}), ("reset",)])
    with FaultProxy(server.port, faults) as proxy:
        proc = subprocess.run([*hermes_exe, "batch", "-", "--endpoint", proxy.url, "--model", "hi", "-q"],
                              input="one\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == "Hi!"
    assert faults.seen[:4] == ["429", "500", "reset", "pass"]


def test_batch_with_text_json_and_tool_lines_and_several_endpoints(hermes_exe, server, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    lines = [{"id": "text", "prompt": "x", "tools": False},
             {"id": "json", "prompt": "y", "schema": {"type": "object"}},
             {"id": "tool", "prompt": "z"}] + [{"id": i, "prompt": "x", "tools": False} for i in range(6)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out.jsonl"
    dead = "http://127.0.0.1:9"  # a second endpoint that is down: skipped while it fails
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "--endpoint", server.url,
                  "--endpoint", dead, "--model", "hi", "--tools", str(tmp_path / "t.py"), "--yes",
                  "--tool-choice", "add", "--concurrency", "3", "-q")
    assert proc.returncode == 0, proc.stderr
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(recs) == {x["id"] for x in lines}
    assert recs["text"]["output"] == "Hi!" and isinstance(recs["json"]["output"], dict)
    assert recs["tool"]["output"] == "Hi!" and recs["tool"]["rounds"] == 1


def test_the_server_killed_mid_batch_then_resumed_gives_one_record_per_id(hermes_exe, models,
                                                                        tmp_path: Path) -> None:
    srv = LlamaServer({"endless": models["endless"]}, tmp_path).start()
    n = 40
    (tmp_path / "in.txt").write_text("\n".join(f"q{i}" for i in range(n)) + "\n")
    out = tmp_path / "out.jsonl"
    cmd = [*hermes_exe, "batch", str(tmp_path / "in.txt"), "-o", str(out), "--endpoint", srv.url,
           "--max-tokens", "64", "--concurrency", "2", "-q"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        with children.ended(proc):  # hermes and the server are stopped however the test ends
            deadline = time.monotonic() + 120
            while not out.exists() or out.read_text().count("\n") < 5:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr and proc.stderr.read()
                time.sleep(0.005)  # polling the output, not waiting for time to pass
            srv.kill()
            _, err = proc.communicate(timeout=120)
    except BaseException:
        srv.kill()
        raise
    assert proc.returncode == 5 and "Traceback" not in err, err
    before = out.read_text().count("\n")
    assert 5 <= before < n
    srv.start()
    try:
        resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    finally:
        srv.stop()
    assert resumed.returncode == 0, resumed.stderr
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["id"] for r in recs) == list(range(1, n + 1))
    assert all(r["output"] == "ab" * 32 for r in recs)


def test_ctrl_c_during_a_streamed_reply_cancels_the_request(hermes_exe, server) -> None:
    proc = subprocess.Popen([*hermes_exe, "ask", "go", "--endpoint", server.url, "--model", "endless",
                             "--max-tokens", "200000"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    with children.ended(proc):  # killed however the test ends
        first = proc.stdout.read(16)  # the reply is streaming
        assert first.startswith(b"abab")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # The server is free again at once: the next request does not wait behind the old one.
    after = hermes(hermes_exe, "ask", "x", "--endpoint", server.url, "--model", "hi")
    assert after.returncode == 0 and after.stdout == "Hi!\n"


def test_chat_against_the_server_in_every_mode(server, tmp_path: Path) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from hermes_cli.chat.repl import Repl
    from hermes_cli.core.backends import EndpointBackend
    from hermes_cli.core.chat_session import ChatSession
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.core.loading import connect

    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    served = connect([server.url], "hi", "OPENAI_API_KEY")
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text("".join(line + "\r" for line in [
            "hello", "/json on", "some json", "/json off", f"/tools {tmp_path / 't.py'}", "go", "/model",
            "/prompt"]))
        pipe.close()
        session = PromptSession(input=pipe, output=DummyOutput(), history=InMemoryHistory())
        repl = Repl(console=Console(file=out, width=100, color_system=None), keyboard=session)
        chat = ChatSession(EndpointBackend(served), Conversation(model="hi"), warn=repl.error,
                           confirm=repl.confirm)
        assert repl.run(chat) == 0
    chat.backend.close()
    text = out.getvalue()
    assert "hi at " + server.url + "/v1" in text and "Hi!" in text
    roles = [m.role for m in repl.conversation.messages]
    assert roles[:4] == ["user", "assistant", "user", "assistant"]
    assert isinstance(json.loads(repl.conversation.messages[3].content), dict)
    assert '"messages"' in text  # /prompt shows the request that is sent


def test_a_server_that_echoes_the_key_never_gets_it_printed_or_recorded(hermes_exe, server, tmp_path: Path) -> None:
    """Issue 21, row 9: a 400 whose message quotes `Authorization: Bearer sk-…` back."""
    key = "sk-secret-0123456789abcdef"
    env = {**os.environ, "MY_KEY": key}
    with FaultProxy(server.port, Faults([("echo", 400, {})] * 4)) as proxy:
        asked = hermes(hermes_exe, "ask", "x", "--endpoint", proxy.url, "--model", "hi", "--api-key-env", "MY_KEY",
                       env=env)
        out = tmp_path / "out.jsonl"
        batch = subprocess.run([*hermes_exe, "batch", "-", "-o", str(out), "--endpoint", proxy.url, "--model", "hi",
                                "--api-key-env", "MY_KEY", "-q"], input="one\n", capture_output=True, text=True,
                               timeout=120, env=env)
    assert asked.returncode == 5 and "rejected request from Bearer ***" in asked.stderr
    assert key not in asked.stderr + asked.stdout
    assert batch.returncode == 5 and "rejected request from Bearer ***" in batch.stderr
    assert key not in batch.stderr + batch.stdout + (out.read_text() if out.exists() else "")


def test_a_server_that_streams_the_key_back_in_its_answer_never_gets_it_printed(hermes_exe, server) -> None:
    """Noticed under issue 21, row 9: an error echoing the key was redacted, an answer
    streaming it back (split over events) was not."""
    key = "sk-secret-streamed-0123456789"
    env = {**os.environ, "MY_KEY": key}
    with FaultProxy(server.port, Faults([("stream_echo",)])) as proxy:
        asked = hermes(hermes_exe, "ask", "x", "--endpoint", proxy.url, "--model", "hi", "--api-key-env", "MY_KEY",
                       env=env)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout == "you sent Bearer *** to me\n"
    assert key not in asked.stdout + asked.stderr


def test_show_prompt_prints_the_json_the_server_receives(hermes_exe, server) -> None:
    """Issue 21, row 15: sampling fields sat under "extra_body" and "stream" was missing."""
    args = ["--endpoint", None, "--model", "hi", "--top-k", "7", "--max-tokens", "5", "--seed", "3",
            "--frequency-penalty", "0.5", "--presence-penalty", "0.25"]
    faults = Faults()
    with FaultProxy(server.port, faults) as proxy:
        args[1] = proxy.url
        shown = hermes(hermes_exe, "ask", "hello", *args, "--show-prompt")
        sent = hermes(hermes_exe, "ask", "hello", *args)
    assert shown.returncode == 0 and sent.returncode == 0, sent.stderr
    printed = json.loads(shown.stdout)
    assert "extra_body" not in printed and printed["stream"] is True and printed["top_k"] == 7
    assert (printed["frequency_penalty"], printed["presence_penalty"]) == (0.5, 0.25)  # OpenAI's own names
    assert json.loads(faults.bodies[-1]) == printed


def test_stats_say_unknown_when_a_server_sends_no_usage() -> None:
    from hermes_cli.core import figures
    from hermes_cli.core.backends import BackendFacts
    from hermes_cli.engine.params import GenerationResult

    result = GenerationResult("hi", [], "stop", 0, 0, 0, 0.1, 0.2, generated=3, usage_known=False)
    line = figures.stats_line(result, BackendFacts(name="hi", where="http://127.0.0.1:1"))
    assert "prompt tokens unknown (the server sent no usage)" in line and "~3 (stream events)" in line
    assert "prompt 0 tokens" not in line


def test_wire_messages_answer_every_tool_call_id_as_strict_servers_require() -> None:
    """Issue 21, row 15: the tool message's tool_call_id had no matching tool_calls entry."""
    from hermes_cli.modes.tools.protocol import response_block
    from hermes_cli.prompt.messages import Message
    from hermes_cli.served.backend import wire_messages

    calls = ('<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
             '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>')
    tool_turn = "\n".join([response_block("a", "holds </tool_response> as text"), response_block("b", {"k": 2})])
    wire = wire_messages([Message("user", "q"), Message("assistant", calls), Message("tool", tool_turn),
                          Message("assistant", "done")])
    assert [m["role"] for m in wire] == ["user", "assistant", "tool", "tool", "assistant"]
    offered = [c["id"] for c in wire[1]["tool_calls"]]
    assert [c["function"]["name"] for c in wire[1]["tool_calls"]] == ["a", "b"]
    assert [m["tool_call_id"] for m in wire[2:4]] == offered
    assert "\n".join(m["content"] for m in wire[2:4]) == tool_turn  # the Hermes text, whole
    assert "tool_calls" not in wire[4]


def test_one_retry_policy_classifies_by_class_for_the_hub_and_servers() -> None:
    """Issue 20: two policies that compared type(e).__name__ strings are one (hermes_cli/retry.py)."""
    import importlib

    from hermes_cli import retry
    from hermes_cli.hub.retry import retryable as hub_retryable
    from hermes_cli.served.backend import StreamEndedEarly
    from hermes_cli.served.pool import retryable as served_retryable

    class Status(Exception):
        def __init__(self, code: int, after: str | None = None) -> None:
            self.status_code = code
            self.response = type("R", (), {"headers": {"retry-after": after} if after else {}})()

    for code, passes in ((429, True), (503, True), (500, True), (409, True), (400, False), (401, False), (404, False)):
        assert hub_retryable(Status(code)) is passes and served_retryable(Status(code)) is passes
    assert retry.wait_before(0, Status(429, "7"), base=0.5) == 7.0
    assert retry.wait_before(3, Status(503), base=0.5) == 4.0
    for name in ("httpx", "httpx2"):
        try:
            lib = importlib.import_module(name)
        except ImportError:
            continue
        assert hub_retryable(lib.ReadTimeout("stalled")) and served_retryable(lib.ReadTimeout("stalled"))
        refused = lib.ConnectError("refused")
        assert not hub_retryable(refused) and served_retryable(refused)  # a server may be restarting
    assert served_retryable(StreamEndedEarly("cut")) and hub_retryable(ConnectionResetError())
    assert not hub_retryable(ConnectionRefusedError()) and served_retryable(ConnectionRefusedError())
    # what served/http.py's client raises (the standard library's): a kept connection the
    # server dropped, a chunked answer cut short, a read that stalled, a busy server
    import http.client

    from hermes_cli.served.http import HttpError, NotOpenAI

    assert served_retryable(http.client.RemoteDisconnected("closed")) and served_retryable(TimeoutError())
    assert served_retryable(http.client.IncompleteRead(b"part"))
    assert served_retryable(HttpError(503, {}, {"error": {"message": "busy"}}))
    assert not served_retryable(HttpError(400, {}, "bad")) and not served_retryable(NotOpenAI("html"))
    assert not served_retryable(ValueError("a bug"))


def test_a_continued_reply_asks_the_server_to_go_on_with_the_final_assistant_turn() -> None:
    from hermes_cli.prompt.messages import Message as Msg
    from hermes_cli.served.backend import ServedBackend
    from hermes_cli.served.client import Endpoint
    from hermes_cli.served.pool import EndpointPool

    backend = ServedBackend(EndpointPool([Endpoint("http://127.0.0.1:9")]), "m")
    from hermes_cli.engine.params import SamplingParams

    params = SamplingParams(max_tokens=5)
    opened = backend.request([Msg("user", "go"), Msg("assistant", "Hi th", open=True)], params)
    closed = backend.request([Msg("user", "go")], params)
    assert opened["continue_final_message"] is True and opened["add_generation_prompt"] is False
    assert opened["messages"][-1] == {"role": "assistant", "content": "Hi th"}
    assert "continue_final_message" not in closed


def test_the_served_client_goes_through_a_proxy_when_the_environment_names_one(hermes_exe, server, tmp_path,
                                                                               monkeypatch) -> None:
    """http_proxy is honoured for a remote endpoint (a proxy that answers 502 shows it was
    used), and never for this machine's own server."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            self.send_response(502)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.delenv("no_proxy", raising=False)
        remote = hermes(hermes_exe, "ask", "x", "--endpoint", "http://models.example:8000", "--model", "m")
        assert remote.returncode == 5 and seen == ["http://models.example:8000/v1/models"], remote.stderr
        local = hermes(hermes_exe, "ask", "hello", "--endpoint", server.url, "--model", "hi")
        assert (local.returncode, local.stdout) == (0, "Hi!\n"), local.stderr
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_parallel_is_for_a_model_loaded_here_and_says_so_with_an_endpoint(hermes_exe, tmp_path: Path) -> None:
    """One Backend door for batch: what it can do decides (--parallel needs the engine's
    slots; a served engine takes --concurrency), said in one line, exit 2."""
    from tests.scripted_server import EndlessServer

    (tmp_path / "in.jsonl").write_text('{"id": 1, "prompt": "x"}\n')
    with EndlessServer(reply="ok") as server:
        proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                      "--endpoint", server.url, "--model", "m", "--parallel", "2")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--parallel decodes prompts together in a model loaded here" in proc.stderr
    assert "--concurrency" in proc.stderr
