"""The third fault table (issue 29): state that belongs to another model, streams that never
end, approvals from a pipe, tools that leave children behind, MCP noise, batch input as
Windows saves it, inputs that never stop. Each test failed on the code before its fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scripted_server import EndlessServer

LONG_SYSTEM = "You are a careful assistant. " * 12  # over the prompt cache's 32-token minimum


def hermes(exe: list[str], *args: str, stdin: str | bytes | None = None, timeout: float = 120,
           env: dict[str, str] | None = None, new_session: bool = False) -> subprocess.CompletedProcess[str]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run([*exe, *args], input=data, capture_output=True, timeout=timeout, env=env,
                          stdin=None if data is not None else subprocess.DEVNULL,
                          start_new_session=new_session)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


# -- 1. state kept for a model file that was replaced ---------------------------------------

def replace_keeping_size_and_mtime(source: Path, target: Path) -> None:
    """What `cp -p other.gguf model.gguf` does: the bytes rewritten in place (same inode),
    the old mtime put back."""
    before = target.stat()
    assert source.stat().st_size == before.st_size
    with open(source, "rb") as src, open(target, "r+b") as dst:
        shutil.copyfileobj(src, dst)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_a_model_replaced_in_place_with_size_and_mtime_kept_gets_no_old_prompt_state(
        hermes_exe, models, tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    shutil.copyfile(models["hi"], model)
    args = ("ask", "x", "-m", str(model), "-s", LONG_SYSTEM, "--stats")
    first = hermes(hermes_exe, *args)
    again = hermes(hermes_exe, *args)
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert first.stdout == again.stdout == "Hi!\n"
    assert "from the prompt cache" in again.stderr  # the cache works for the same file
    replace_keeping_size_and_mtime(models["utf8"], model)
    after = hermes(hermes_exe, *args)
    assert after.returncode == 0, after.stderr
    assert "from the prompt cache" not in after.stderr
    assert after.stdout == "é!\n"


def test_a_chats_kv_state_is_not_restored_into_a_replaced_model_file(tmp_path: Path, models) -> None:
    from hermes_cli.core import sessions
    from hermes_cli.engine.model import Engine
    from hermes_cli.engine.params import SamplingParams
    from hermes_cli.prompt.messages import Message
    from hermes_cli.prompt.template import template_for

    model = tmp_path / "model.gguf"
    shutil.copyfile(models["hi"], model)
    engine = Engine.load(model, n_threads=1)
    try:
        ids = template_for(engine).render([Message("user", "hello")])
        for _ in engine.generate(ids, SamplingParams(max_tokens=3)):
            pass
        sessions.save_state(engine, "conv1")
        assert sessions.restore_state(engine, "conv1") > 0  # the same file: restored
    finally:
        engine.close()
    replace_keeping_size_and_mtime(models["utf8"], model)
    other = Engine.load(model, n_threads=1)
    try:
        assert sessions.restore_state(other, "conv1") == 0
    finally:
        other.close()


def test_file_identity_changes_with_an_in_place_copy_and_not_by_itself(tmp_path: Path) -> None:
    from hermes_cli import fileid

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 100)
    b.write_bytes(b"y" * 100)
    first = fileid.identity(a)
    assert first == fileid.identity(a) and first is not None
    time.sleep(0.01)  # the kernel's coarse clock: ctime ticks every few ms
    replace_keeping_size_and_mtime(b, a)
    assert fileid.identity(a) != first
    assert fileid.identity(tmp_path) is None and fileid.identity(tmp_path / "none") is None


# -- 2, 3. served streams that never end ------------------------------------------------------

def test_max_tokens_caps_a_served_reply_whose_server_ignores_it(hermes_exe) -> None:
    with EndlessServer() as server:
        started = time.monotonic()
        proc = hermes(hermes_exe, "ask", "Hi", "--endpoint", server.url, "--model", "m",
                      "--max-tokens", "5", timeout=60)
        took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["word"] * 5
    assert "cut at --max-tokens (5)" in proc.stderr
    assert server.max_tokens_seen == [5]
    assert took < 30


def test_request_timeout_bounds_a_whole_batch_request_that_keeps_streaming(hermes_exe, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "a", "prompt": "Hi"}\n')
    out = tmp_path / "out.jsonl"
    with EndlessServer() as server:
        started = time.monotonic()
        proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "--endpoint", server.url,
                      "--model", "m", "--request-timeout", "2", timeout=90)
        took = time.monotonic() - started
    # a server's failure stops the batch (exit 5, the records so far kept; the same command resumes)
    assert proc.returncode == 5, proc.stderr
    assert "still answering after 2 s, the bound on one request" in proc.stderr
    assert out.read_text() == ""
    assert took < 30


# -- 4. approvals come from a terminal only ---------------------------------------------------

def notes_tool(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "ran"
    tools = tmp_path / "tools.py"
    tools.write_text(f"def add(a: int, b: int) -> int:\n    \"\"\"Add.\"\"\"\n"
                     f"    open({str(marker)!r}, 'a').write('ran\\n')\n    return a + b\n")
    return tools, marker


def test_a_piped_y_never_approves_a_tool_call_in_chat(hermes_exe, models, tmp_path: Path) -> None:
    tools, marker = notes_tool(tmp_path)
    proc = hermes(hermes_exe, "chat", "-m", str(models["caller"]), "--ctx", "8192",
                  stdin=f"/tools {tools}\nRemember milk.\ny\ny\n", new_session=True)
    assert not marker.exists()
    assert "approvals come only from a terminal" in proc.stdout + proc.stderr
    assert proc.returncode == 0


def test_a_piped_y_never_approves_a_tool_call_in_ask(hermes_exe, models, tmp_path: Path) -> None:
    tools, marker = notes_tool(tmp_path)
    proc = hermes(hermes_exe, "ask", "go", "-m", str(models["random"]), "--tools", str(tools),
                  "--tool-choice", "add", "--seed", "1", stdin="y\ny\n", new_session=True)
    assert proc.returncode == 2
    assert "nobody can approve it" in proc.stderr and "--yes" in proc.stderr
    assert not marker.exists()


def test_with_stdin_piped_the_approval_is_asked_on_the_controlling_terminal(
        hermes_exe, models, tmp_path: Path) -> None:
    """stdin holds `y`; the person at the terminal says `n`, then in a second run `y`:
    the terminal's answer is the one that counts."""
    from tests.test_chat_terminal import Terminal, env_for

    tools, marker = notes_tool(tmp_path)
    piped = tmp_path / "piped.txt"
    piped.write_text("y\ny\n")
    for typed, runs in (("n", False), ("y", True)):
        argv = ["/bin/sh", "-c", f'exec "$0" "$@" < {piped}', *hermes_exe, "ask", "go", "-m",
                str(models["random"]), "--tools", str(tools), "--tool-choice", "add", "--seed", "1",
                "--max-rounds", "1"]
        term = Terminal(argv, env_for(tmp_path))
        term.expect(r"run add\(\{[^\n]*\}\)\? \[y/N\]")
        term.send(typed + "\r")
        term.wait()
        assert marker.exists() is runs, term.text()[-1000:]


# -- 5. a tool's children are stopped with it -------------------------------------------------

def test_a_timed_out_tool_is_stopped_with_the_child_it_started(tmp_path: Path) -> None:
    from hermes_cli.modes.tools.runner import run_call
    from hermes_cli.modes.tools.signature import tool_from_function

    pidfile = tmp_path / "child.pid"

    def hang(seconds: int) -> str:
        """Start a child that sleeps, then hang."""
        child = subprocess.Popen(["sleep", str(seconds)])
        pidfile.write_text(str(child.pid))
        time.sleep(seconds)
        return "done"

    ok, content = run_call(tool_from_function(hang), {"seconds": 60}, timeout=1.0)
    assert not ok and "did not finish within 1 s" in content
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the tool's child outlived the run"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not yet reaped by its (new) parent
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_tool_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    from hermes_cli.modes.tools.runner import run_call
    from hermes_cli.modes.tools.signature import tool_from_function

    pidfile = tmp_path / "pid"

    def stubborn(seconds: int) -> str:
        """Ignore SIGTERM and hang."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pidfile.write_text(str(os.getpid()))
        time.sleep(seconds)
        return "done"

    started = time.monotonic()
    ok, _ = run_call(tool_from_function(stubborn), {"seconds": 60}, timeout=0.5)
    assert not ok and time.monotonic() - started < 10
    assert not _alive(int(pidfile.read_text()))


# -- 6, 7. MCP servers: stdout noise, and a cache that cannot be written ------------------------

MCP_ASK = ("--tool-choice", "add", "--yes", "--seed", "1", "--max-tokens", "300", "--stats", "--ctx", "4096",
           "--max-rounds", "1")
NOISY_SERVER = '''
import sys
print("Loading data... done", flush=True)
from mcp.server.mcpserver import MCPServer
app = MCPServer("noisy")

@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b

app.run()
'''


def test_an_mcp_server_printing_plain_text_on_stdout_puts_no_traceback_on_ours(
        hermes_exe, models, tmp_path: Path) -> None:
    server = tmp_path / "noisy.py"
    server.write_text(NOISY_SERVER)
    proc = hermes(hermes_exe, "ask", "go", "-m", str(models["random_plain"]), "--mcp", f"{sys.executable} {server}",
                  *MCP_ASK)
    assert "Traceback" not in proc.stderr and "pydantic" not in proc.stderr.lower(), proc.stderr
    assert "← add {\"result\"" in proc.stderr, proc.stderr  # the tool ran
    assert proc.returncode == 0, proc.stderr


def test_an_unwritable_cache_costs_the_mcp_log_not_the_tools(hermes_exe, models, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    server = Path(__file__).parent / "mcp_demo_server.py"
    env = {**os.environ, "HERMES_CACHE_DIR": str(blocker)}
    proc = hermes(hermes_exe, "ask", "go", "-m", str(models["random_plain"]), "--mcp", f"{sys.executable} {server}",
                  *MCP_ASK, env=env)
    assert "NotADirectoryError" not in proc.stderr and "failed" not in proc.stderr, proc.stderr
    assert "← add {\"result\"" in proc.stderr, proc.stderr  # the tool ran
    assert proc.returncode == 0, proc.stderr


# -- 8, 9. batch input as people save it ------------------------------------------------------

def test_a_jsonl_file_with_a_bom_and_crlf_reads_as_jsonl(hermes_exe, models, tmp_path: Path) -> None:
    data = '{"id": "a", "prompt": "one"}\r\n{"id": "b", "prompt": "two"}\r\n'.encode("utf-8-sig")
    (tmp_path / "in.jsonl").write_bytes(data)
    out = tmp_path / "out.jsonl"
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m", str(models["hi"]))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "b"]


def test_a_text_file_with_a_bom_has_no_bom_in_its_first_prompt(tmp_path: Path) -> None:
    from hermes_cli.cli.batch import open_input
    from hermes_cli.core.batch import read_items

    (tmp_path / "in.txt").write_bytes("first line\r\nsecond\r\n".encode("utf-8-sig"))
    for stream in open_input(str(tmp_path / "in.txt")):
        items = read_items(stream)
    assert [it.messages[0].content for it in items] == ["first line", "second"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.dictionaries(st.sampled_from(["prompt", "system"]), st.text(max_size=20), min_size=1),
                      min_size=1, max_size=5),
       bom=st.booleans(), ending=st.sampled_from(["\n", "\r\n"]))
def test_batch_input_reads_alike_whatever_its_bom_and_line_endings(lines, bom, ending, tmp_path: Path) -> None:
    from hermes_cli.cli.batch import open_input
    from hermes_cli.core.batch import read_items

    rows = [{"id": i, "prompt": "p", **line} for i, line in enumerate(lines)]
    text = ending.join(json.dumps(r) for r in rows) + ending
    path = tmp_path / "in.jsonl"
    path.write_bytes(text.encode("utf-8-sig" if bom else "utf-8"))
    for stream in open_input(str(path)):
        items = read_items(stream)
    assert [it.id for it in items] == [r["id"] for r in rows]
    assert [it.messages[0].content for it in items] == [r["prompt"] for r in rows]
    assert all(it.error is None for it in items)


def test_an_unreadable_line_never_takes_an_id_another_line_owns(tmp_path: Path) -> None:
    from hermes_cli.core.batch import Item, read_items, record_key

    text = '{"id": 2, "prompt": "Hi"}\n{"id": 7, "prompt": "\\ud83d"}\n{"prompt": "\\ud83d"}\n'
    import io

    items = read_items(io.StringIO(text))
    assert [it.id for it in items] == [2, 7, None]  # the lone surrogate's line keeps its own id 7
    assert items[1].error and items[2].error
    assert items[2].key == "line 3" and record_key({"id": None, "line": 3, "error": "x"}) == "line 3"
    assert Item(2, 1).key == record_key({"id": 2, "output": "x"})


def test_a_batch_with_a_surrogate_line_runs_and_resumes_past_it(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": 2, "prompt": "Hi"}\n{"prompt": "\\ud83d"}\n')
    out = tmp_path / "out.jsonl"
    args = ("batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m", str(models["hi"]))
    first = hermes(hermes_exe, *args)
    assert first.returncode == 1 and "duplicate" not in first.stderr, first.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["id"], r.get("line")) for r in records} == {(2, None), (None, 2)}
    again = hermes(hermes_exe, *args)
    assert again.returncode == 0 and len(out.read_text().splitlines()) == 2, again.stderr


# -- 10, 11, 12. inputs that never stop, and bytes that are not text --------------------------

def test_stdin_that_never_ends_is_refused_in_bounded_memory(hermes_exe, models) -> None:
    yes = subprocess.Popen(["yes", "word"], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run([*hermes_exe, "ask", "Summarize", "-m", str(models["hi"])], stdin=yes.stdout,
                              capture_output=True, text=True, timeout=60,
                              preexec_fn=lambda: __import__("resource").setrlimit(
                                  __import__("resource").RLIMIT_AS, (3 << 30, 3 << 30)))
    finally:
        yes.kill()
        yes.wait()
    assert proc.returncode == 4, proc.stderr
    assert "stdin goes on past 64.0 MiB" in proc.stderr and "16,777,216 tokens" in proc.stderr
    assert "MemoryError" not in proc.stderr


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_given_as_a_file_is_one_line_exit_2(hermes_exe, models, device: str) -> None:
    proc = hermes(hermes_exe, "ask", "Summarize", "-f", device, "-m", str(models["hi"]), timeout=60)
    assert proc.returncode == 2
    assert f"{device} is not a regular file" in proc.stderr and "MemoryError" not in proc.stderr


def test_read_and_load_of_a_device_in_chat_are_error_lines(hermes_exe, models) -> None:
    proc = hermes(hermes_exe, "chat", "-m", str(models["hi"]), timeout=60,
                  stdin="/read /dev/zero\n/read /dev/urandom\n/load /dev/zero\nhello\n")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert text.count("is not a regular file") == 3 and "MemoryError" not in text
    assert "Hi!" in text  # the chat went on


def test_batch_input_that_never_ends_is_refused(hermes_exe, models) -> None:
    proc = hermes(hermes_exe, "batch", "/dev/zero", "-m", str(models["hi"]), timeout=60)
    assert proc.returncode == 2 and "longer than 16,777,216 characters" in proc.stderr


def test_a_non_utf8_argument_is_a_usage_error_naming_it(hermes_exe, models) -> None:
    proc = subprocess.run([*hermes_exe, "ask", b"bad \xff arg", "-m", str(models["hi"])],  # type: ignore[list-item]
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert b"argument 2 ('bad \\\\xff arg') is not UTF-8 text (byte 0xff at offset 4)" in proc.stderr
    assert b"Traceback" not in proc.stderr and b"UnicodeEncodeError" not in proc.stderr


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=12), min_size=1, max_size=4))
def test_argument_bytes_are_used_as_text_or_refused_naming_them(args: list[bytes]) -> None:
    from hermes_cli.cli.main import undecodable_argument

    argv = [os.fsdecode(a) for a in args]
    problem = undecodable_argument(argv)
    bad = [i for i, a in enumerate(args, 1) if _not_utf8(a) and not os.path.lexists(a)]
    if not bad:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(f"argument {bad[0]} (")


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_a_non_utf8_file_name_is_still_a_file(tmp_path: Path) -> None:
    from hermes_cli.cli.main import undecodable_argument

    name = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    open(name, "w").close()
    assert undecodable_argument(["ask", "-f", os.fsdecode(name)]) is None
    assert undecodable_argument(["ask", "--file=" + os.fsdecode(name)]) is None


# -- one writer per conversation ----------------------------------------------------------------

def test_a_new_chat_holds_its_conversation_from_its_first_save(hermes_exe, models, tmp_path: Path) -> None:
    """(The pty child is ended by conftest if the test fails partway.)"""
    from tests.test_chat_terminal import Terminal, env_for

    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env_for(tmp_path))
    term.expect(r"(^|\n)>")
    term.send("hello\r")
    term.expect(r"Hi![\s\S]*tokens ·[^\n]*\n[\s\S]*>")
    saved = sorted((tmp_path / "data" / "sessions").glob("*.json"))
    assert len(saved) == 1
    env = {**os.environ, "HERMES_DATA_DIR": str(tmp_path / "data")}
    other = hermes(hermes_exe, "chat", "--resume", saved[0].stem, "-m", str(models["hi"]),
                   stdin="again\n", env=env)
    assert other.returncode == 2 and "in use by another hermes" in other.stderr
    term.send("/exit\r")
    assert term.wait() == 0


def test_a_chat_moving_to_a_loaded_copy_takes_its_lock_and_lets_the_old_go(tmp_path: Path, load) -> None:
    from hermes_cli.core import locks, sessions
    from hermes_cli.core.backends import LocalBackend
    from hermes_cli.core.chat_session import ChatSession
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.errors import UsageError

    first = Conversation(model="tiny")
    session = ChatSession(LocalBackend(load("hi")), first)
    session.save()
    with pytest.raises(UsageError), locks.held(sessions.path_for(first.id), "x"):  # held: refused
        pass
    session.load_file(sessions.path_for(first.id))
    assert session.conversation.id != first.id
    with locks.held(sessions.path_for(first.id), "x"):  # let go
        pass
    with pytest.raises(UsageError), locks.held(sessions.path_for(session.conversation.id), "x"):
        pass
    session.lock.release()


# -- issue 30: README rows that had no test through the command --------------------------------

def test_a_served_engines_malformed_tool_calls_exit_5_through_the_command(hermes_exe, tmp_path: Path) -> None:
    tools, marker = notes_tool(tmp_path)
    bad = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": }\n</tool_call>'
    with EndlessServer(reply=bad) as server:
        proc = hermes(hermes_exe, "ask", "go", "--endpoint", server.url, "--model", "m", "--tools", str(tools),
                      "--tool-choice", "add", "--yes")
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == "" and not marker.exists()
    assert server.requests == 3  # the answer, then asked again twice


def test_a_served_schema_answer_still_invalid_after_its_retries_exits_6(hermes_exe) -> None:
    schema = '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}'
    with EndlessServer(reply='{"n": "not a number"}') as server:
        proc = hermes(hermes_exe, "ask", "go", "--endpoint", server.url, "--model", "m", "--schema", schema)
    assert proc.returncode == 6, proc.stderr
    assert proc.stdout == "" and server.requests == 3


def test_a_file_over_8_mib_is_refused_before_it_is_read(hermes_exe, models, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (8 * 1024 * 1024 + 1))
    proc = hermes(hermes_exe, "ask", "x", "-f", str(big), "-m", str(models["hi"]))
    assert proc.returncode == 2 and "over the 8.0 MiB a file may be" in proc.stderr, proc.stderr
    exact = tmp_path / "exact.txt"
    exact.write_bytes(b"a " * (4 * 1024 * 1024))  # 8 MiB exactly: read, then too many tokens (exit 4)
    proc = hermes(hermes_exe, "ask", "x", "-f", str(exact), "-m", str(models["hi"]))
    assert proc.returncode == 4, proc.stderr


def test_a_context_whose_kv_cache_exceeds_free_memory_is_refused_before_llama_cpp(
        hermes_exe, tmp_path: Path) -> None:
    from tests import tinymodels as tm

    # 4 layers × 128 wide × 2**24 tokens × 4 bytes: 34 GB of KV cache, more than this machine has
    wide = tm.write_model(tmp_path / "wide.gguf", embedding=128, blocks=4, context_length=2**24)
    proc = hermes(hermes_exe, "ask", "x", "-m", str(wide), "--ctx", str(2**24))
    assert proc.returncode == 3, proc.stderr
    assert "of KV cache and" in proc.stderr and "GB of memory is free" in proc.stderr
    assert "lower --ctx" in proc.stderr


@settings(max_examples=150, deadline=None)
@given(own_tags=st.booleans(), lead=st.sampled_from(["", "\n", "  "]), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_a_served_forced_call_is_wrapped_once_however_the_server_splits_it(own_tags, lead, cuts) -> None:
    """The server writes the call's JSON (as asked) or, ignoring response_format, the
    whole tagged call: either way the text has one opening and one closing tag."""
    from hermes_cli.served.backend import _Wrap

    body = '{"name": "add", "arguments": {"a": 1}}'
    text = lead + (f"<tool_call>\n{body}\n</tool_call>" if own_tags else body)
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    wrap = _Wrap("<tool_call>\n", "\n</tool_call>")
    out = "".join(wrap.feed(text[a:b]) for a, b in zip(bounds, bounds[1:]))
    out += wrap.finish(calls=False) + wrap.ending()
    assert out.count("<tool_call>") == 1 and out.count("</tool_call>") == 1
    assert out.split() == f"<tool_call>\n{body}\n</tool_call>".split()  # the server's blanks may stay


def test_a_chats_kv_state_from_another_llama_cpp_build_is_not_restored(tmp_path: Path, models, monkeypatch) -> None:
    """One scheme keys every kept state (engine/prompt_cache.py: state_shape): a chat's KV
    state written by another llama.cpp build is discarded, as a kept prompt's is."""
    from hermes_cli.core import sessions
    from hermes_cli.engine import prompt_cache
    from hermes_cli.engine.model import Engine
    from hermes_cli.engine.params import SamplingParams
    from hermes_cli.prompt.messages import Message
    from hermes_cli.prompt.template import template_for

    engine = Engine.load(models["hi"], n_threads=1)
    try:
        ids = template_for(engine).render([Message("user", "hello")])
        for _ in engine.generate(ids, SamplingParams(max_tokens=3)):
            pass
        sessions.save_state(engine, "conv2")
        assert sessions.restore_state(engine, "conv2") > 0
        sessions.save_state(engine, "conv2")
        monkeypatch.setattr(prompt_cache, "_version", "0.0.0-another-build")
        assert sessions.restore_state(engine, "conv2") == 0
        assert not sessions.path_for("conv2").with_suffix(".kv").exists()  # discarded, not kept to fail again
    finally:
        engine.close()
