"""The second fault table (issue 21): hostile and hurried input that used to lose data,
crash by signal or end in an exception's name. Each test is a README fault-table row.

Processes are started with SIGINT at its default (a suite started in the background of a
non-interactive shell inherits it ignored, and Python keeps it so) and are always ended,
even when an assertion fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import tinymodels as tm


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(exe: list[str], *args: str, cwd: Path | None = None, input: bytes | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*exe, *args], capture_output=True, timeout=timeout, cwd=cwd, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL, preexec_fn=_default_sigint)


@contextlib.contextmanager
def started(exe: list[str], *args: str, cwd: Path | None = None, stdin: int = subprocess.DEVNULL
            ) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([*exe, *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, preexec_fn=_default_sigint)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


# -- 7: values that used to be exit 1 with a Python exception's name ------------------------

@pytest.mark.parametrize(("option", "message"), [
    (["--temperature", "500"], "--temperature must be between 0 and 100, not 500.0"),
    (["--temperature", "nan"], "--temperature must be between 0 and 100, not nan"),
    (["--repeat-penalty", "1e309"], "--repeat-penalty must be between 0 and 100, not inf"),
    (["--top-k", "2000000"], "--top-k must be between 0 and 1000000, not 2000000"),
    (["--frequency-penalty", "3"], "--frequency-penalty must be between -2 and 2, not 3.0"),
    (["--presence-penalty", "-inf"], "--presence-penalty must be between -2 and 2, not -inf"),
    (["--max-tokens", "99999999999999999999"], "--max-tokens must be between 1 and 10000000"),
    (["--seed", "99999999999999999999"], "--seed must be between 0 and 2147483647"),
])
def test_absurd_sampling_values_are_a_usage_error_naming_the_option(hermes_exe, models, option, message) -> None:
    proc = run(hermes_exe, "ask", "-m", str(models["hi"]), *option, "hi")
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode()
    assert message in err and "Error" in err and "Traceback" not in err and "ValueError" not in err


def test_slash_set_checks_the_same_table_and_the_session_still_opens(load, tmp_path: Path) -> None:
    """`/set temperature 500` used to be accepted and saved, and the session then failed
    `--resume` as "not a hermes conversation file"."""
    from hermes_cli.chat.commands import dispatch
    from hermes_cli.core.backends import LocalBackend
    from hermes_cli.core.chat_session import ChatSession
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.errors import UsageError

    session = ChatSession(LocalBackend(load("hi")), Conversation(model="m"), autosave=False)
    said: list[str] = []

    class UI:
        def say(self, text: str, **_kw: object) -> None:
            said.append(text)

    with pytest.raises(UsageError, match="temperature must be between 0 and 100, not 500"):
        dispatch(session, UI(), "/set temperature 500")  # type: ignore[arg-type]
    dispatch(session, UI(), "/set temperature 0.5")  # type: ignore[arg-type]
    dispatch(session, UI(), "/set fast_forward off")  # type: ignore[arg-type]
    path = tmp_path / "s.json"
    session.conversation.save(path)
    reopened = Conversation.load(path)
    assert reopened.params.temperature == 0.5 and reopened.params.fast_forward is False


# -- 8: what llama.cpp would crash on is refused before it is called ------------------------

@pytest.mark.parametrize(("option", "message"), [
    (["--threads", "100000"], "--threads must be between 1 and 512"),
    (["--threads", "30000"], "--threads must be between 1 and 512"),
    (["--ctx", "4294967297", "--gpu-layers", "1"], "--ctx must be between 0 and 16,777,216"),
    (["--gpu-layers", "99999999999"], "--gpu-layers must be between -1 and 100,000"),
])
def test_hardware_values_llama_cpp_would_crash_on_are_exit_2(hermes_exe, models, option, message) -> None:
    proc = run(hermes_exe, "ask", "-m", str(models["hi"]), *option, "hi")
    assert proc.returncode == 2, (proc.returncode, proc.stderr)  # was SIGSEGV, a hang, SIGABRT
    assert message in proc.stderr.decode()


def test_a_gguf_with_no_layers_is_exit_3_not_sigabrt(hermes_exe, tmp_path: Path) -> None:
    path = tm.write_model(tmp_path / "b0.gguf", kind="random", blocks=0)
    proc = run(hermes_exe, "ask", "-m", str(path), "hi")
    assert proc.returncode == 3, proc.returncode
    assert "llama.block_count is 0" in proc.stderr.decode()


# -- 7 and 12: stdin --------------------------------------------------------------------------

def test_non_utf8_stdin_is_a_usage_error(hermes_exe, models) -> None:
    proc = run(hermes_exe, "ask", "-m", str(models["hi"]), "Summarize", input=b"x\xff")
    assert proc.returncode == 2
    assert "stdin is not UTF-8 text (byte 0xff at offset 1)" in proc.stderr.decode()


def test_50_mb_on_stdin_is_refused_early_in_bounded_memory(hermes_exe, models) -> None:
    data = (b"a" * 79 + b"\n") * (50 * 1024 * 1024 // 80)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = run(hermes_exe, "ask", "-m", str(models["hi"]), "Summarize", input=data)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert proc.returncode == 4, proc.stderr
    assert "but the context holds 2,048" in proc.stderr.decode()
    # the largest child so far (this one included) stayed far below the 3.4 GB it took
    assert max(before, peak_kb) < 1024 * 1024, peak_kb


# -- 7 and 10: a tools file's exit and prints --------------------------------------------------

NOISY_TOOLS = '''
import os, sys
print("IMPORT-NOISE")
os.write(1, b"FD-NOISE\\n")

def add(a: int, b: int) -> int:
    """Add two integers."""
    print("TOOL-NOISE")
    os.write(1, b"TOOL-FD-NOISE\\n")
    return a + b
'''


def test_a_tools_file_calling_sys_exit_at_import_is_exit_2(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("import sys\nsys.exit(0)\n")
    proc = run(hermes_exe, "ask", "-m", str(models["hi"]), "--tools", str(tmp_path / "t.py"), "go")
    assert proc.returncode == 2 and "importing it called sys.exit(0)" in proc.stderr.decode()


def test_a_tools_prints_never_reach_asks_stdout(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(NOISY_TOOLS)
    proc = run(hermes_exe, "ask", "-m", str(models["random_plain"]), "--tools", str(tmp_path / "t.py"),
               "--tool-choice", "add", "--yes", "-v", "--max-tokens", "80", "--seed", "1", "go")
    assert proc.returncode in (0, 6), proc.stderr
    assert b"NOISE" not in proc.stdout
    if proc.returncode == 0:
        err = proc.stderr.decode()
        assert "IMPORT-NOISE" in err and "FD-NOISE" in err and "TOOL-NOISE" in err


def test_a_tools_prints_never_reach_batchs_jsonl(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(NOISY_TOOLS)
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": 1, "prompt": "go", "max_tokens": 80, "seed": 1}) + "\n")
    proc = run(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-m", str(models["random_plain"]),
               "--tools", str(tmp_path / "t.py"), "--tool-choice", "add", "--yes", "-q")
    for line in proc.stdout.decode().splitlines():  # every stdout line is a record
        json.loads(line)
    assert b"NOISE" not in proc.stdout


# -- 1: Ctrl-C during a batch ----------------------------------------------------------------

def test_ctrl_c_during_a_batch_exits_130_and_does_not_record_the_cut_line(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": 1, "prompt": "a", "max_tokens": 4}) + "\n"
                                       + json.dumps({"id": 2, "prompt": "b"}) + "\n")
    out = tmp_path / "out.jsonl"
    with started(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m", str(models["endless"]),
                 "--ctx", "0", "-q") as proc:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_bytes().count(b"\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, "line 1 was never recorded"
            time.sleep(0.01)
        time.sleep(0.3)  # line 2 is generating (32k tokens: seconds)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [1]  # line 2 was cut: not recorded, so a resume answers it
    assert os.path.getsize(out) > 0


# -- 5: one bad batch line blocks nothing ----------------------------------------------------

def test_a_lone_surrogate_or_deep_nesting_in_a_batch_line_is_that_lines_error(hermes_exe, models,
                                                                              tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(
        '{"id": 1, "prompt": "x \\ud83d"}\n'
        + '{"id": 2, "prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
        + '{"id": 3, "prompt": "ok"}\n')
    out = tmp_path / "out.jsonl"
    proc = run(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m", str(models["hi"]), "-q")
    assert proc.returncode == 1, proc.stderr  # some lines failed: the documented code
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert "a lone surrogate" in recs[1]["error"] and "nested deeper than" in recs[2]["error"]
    assert recs[3]["output"] == "Hi!"
    again = run(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m", str(models["hi"]), "-q")
    assert again.returncode == 0 and len(out.read_text().splitlines()) == 3  # the resume does not stop there


# -- 6: hostile session files ------------------------------------------------------------------

def _session(tmp_path: Path, **raw_fields: str) -> str:
    """A saved conversation whose `raw_fields` are replaced by the given JSON text."""
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.core.sessions import path_for

    conv = Conversation(model="m")
    conv.add("user", "hello ZEBRA")
    conv.add("assistant", "hi")
    data = conv.to_dict()
    text = json.dumps({k: v for k, v in data.items() if k not in raw_fields})[:-1]
    text += "".join(f", {json.dumps(k)}: {v}" for k, v in raw_fields.items()) + "}"
    path_for(conv.id).parent.mkdir(parents=True, exist_ok=True)
    path_for(conv.id).write_text(text)
    return conv.id


@pytest.mark.parametrize(("field", "raw", "message"), [
    ("messages", '[{"role": "user", "content": "x \\ud83d"}]', "a lone surrogate"),
    ("created", "1" + "0" * 400, "created must be a time in seconds"),
    ("messages", "[" * 100_000 + "]" * 100_000, "nested deeper than"),
])
def test_a_hostile_session_file_is_refused_in_one_line_and_skipped_by_history(
        hermes_exe, models, tmp_path: Path, field, raw, message) -> None:
    good = _session(tmp_path)
    time.sleep(0.002)  # ids sort by time: the bad one is the newest
    bad = _session(tmp_path, **{field: raw})
    proc = run(hermes_exe, "chat", "-m", str(models["hi"]), "--resume", bad, input=b"")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()
    listing = run(hermes_exe, "history")
    assert listing.returncode == 0 and good in listing.stdout.decode()
    found = run(hermes_exe, "history", "--grep", "ZEBRA")
    assert found.returncode == 0 and good in found.stdout.decode()


# -- 7: a schema nested 5,000 deep ------------------------------------------------------------

def test_a_schema_nested_5000_deep_is_a_usage_error(hermes_exe, models, tmp_path: Path) -> None:
    deep = '{"type": "object", "properties": {"a": ' + '{"type": "array", "items": ' * 5000 + "{}" \
        + "}" * 5000 + "}}"
    (tmp_path / "deep.json").write_text(deep)
    proc = run(hermes_exe, "ask", "-m", str(models["hi"]), "--schema", str(tmp_path / "deep.json"), "hi")
    assert proc.returncode == 2 and "nested deeper than 200 levels" in proc.stderr.decode()


# -- 13: batch files are confined to the working directory -----------------------------------

def test_batch_files_outside_the_working_directory_are_refused_unless_allowed(hermes_exe, models,
                                                                             tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    work = tmp_path / "work"
    work.mkdir()
    (work / "ok.txt").write_text("fine")
    (work / "link.txt").symlink_to(secret)
    lines = [{"id": 1, "prompt": "a", "files": ["../secret.txt"]}, {"id": 2, "prompt": "b", "files": [str(secret)]},
             {"id": 3, "prompt": "c", "files": ["link.txt"]}, {"id": 4, "prompt": "d", "files": ["ok.txt"]}]
    (work / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = run(hermes_exe, "batch", "in.jsonl", "-o", "out.jsonl", "-m", str(models["hi"]), "-q", cwd=work)
    recs = {r["id"]: r for r in map(json.loads, (work / "out.jsonl").read_text().splitlines())}
    assert proc.returncode == 1
    for i in (1, 2, 3):
        assert "is outside the working directory" in recs[i]["error"]
    assert recs[4]["output"] == "Hi!"
    (work / "out.jsonl").unlink()
    allowed = run(hermes_exe, "batch", "in.jsonl", "-o", "out.jsonl", "-m", str(models["hi"]), "-q",
                  "--allow-files-outside", cwd=work)
    assert allowed.returncode == 0, allowed.stderr


# -- 16: `-o -` is stdout ---------------------------------------------------------------------

def test_output_dash_writes_stdout_not_a_file_named_dash(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a\n")
    proc = run(hermes_exe, "batch", "in.txt", "-o", "-", "-m", str(models["hi"]), "-q", cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["output"] == "Hi!"
    assert not (tmp_path / "-").exists()


# -- 11: a model's escape sequences on a terminal ----------------------------------------------

def test_escape_sequences_are_shown_on_a_terminal_and_byte_exact_when_piped(hermes_exe, tmp_path: Path) -> None:
    import pty

    title = b"\x1b]0;x\x07"  # OSC 0: retitle the window
    model = tm.write_model(tmp_path / "esc.gguf", kind="bigram", bigram=tm.chain(title))
    piped = run(hermes_exe, "ask", "-m", str(model), "hi")
    assert piped.returncode == 0 and piped.stdout == title + b"\n"
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run([*hermes_exe, "ask", "-m", str(model), "hi"], stdout=secondary,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60,
                              preexec_fn=_default_sigint)
        os.close(secondary)
        shown = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(primary, 4096):
                shown += chunk
    finally:
        os.close(primary)
    assert proc.returncode == 0, proc.stderr
    assert b"^[]0;x^G" in shown and b"\x1b" not in shown and b"\x07" not in shown


def _on_a_terminal(exe: list[str], *args: str) -> bytes:
    import pty

    primary, secondary = pty.openpty()
    try:
        subprocess.run([*exe, *args], stdout=secondary, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                       timeout=60, preexec_fn=_default_sigint)
        os.close(secondary)
        shown = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(primary, 4096):
                shown += chunk
        return shown
    finally:
        os.close(primary)


def test_history_grep_shows_saved_escape_sequences_visibly_on_a_terminal(hermes_exe, tmp_path: Path) -> None:
    _session(tmp_path, messages='[{"role": "user", "content": "ZEBRA \\u001b]0;pwned\\u0007 end"}]')
    shown = _on_a_terminal(hermes_exe, "history", "--grep", "ZEBRA")
    assert b"ZEBRA ^[]0;pwned^G end" in shown and b"\x1b]0" not in shown
    piped = run(hermes_exe, "history", "--grep", "ZEBRA")
    assert b"ZEBRA \x1b]0;pwned\x07 end" in piped.stdout


# -- 2: two processes on one file ---------------------------------------------------------------

def test_a_second_batch_on_the_same_output_is_refused_naming_the_first(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a\nb\n")
    out = tmp_path / "out.jsonl"
    args = ("batch", str(tmp_path / "in.txt"), "-o", str(out), "-m", str(models["endless"]), "--ctx", "0", "-q")
    with started(hermes_exe, *args) as first:
        deadline = time.monotonic() + 30
        while not (tmp_path / "out.jsonl.lock").exists() or not (tmp_path / "out.jsonl.lock").read_text():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.01)
        second = run(hermes_exe, *args)
        assert second.returncode == 2
        assert f"is in use by another hermes (pid {first.pid})" in second.stderr.decode()
    # the first was killed: the kernel released its lock, nothing stale is left
    (tmp_path / "in2.txt").write_text("c\n")
    third = run(hermes_exe, "batch", str(tmp_path / "in2.txt"), "-o", str(out), "-m", str(models["hi"]), "-q")
    assert third.returncode == 0, third.stderr


def test_a_second_chat_on_the_same_conversation_is_refused_naming_the_first(hermes_exe, models, tmp_path: Path) -> None:
    conversation = _session(tmp_path)
    with started(hermes_exe, "chat", "-m", str(models["hi"]), "--resume", conversation,
                 stdin=subprocess.PIPE):  # its input stays open: it waits for a line
        lock = next(iter(Path(os.environ["HERMES_DATA_DIR"]).rglob("*.lock")), None)
        deadline = time.monotonic() + 30
        while lock is None or not lock.read_text():
            assert time.monotonic() < deadline, "the first chat never took the lock"
            time.sleep(0.01)
            lock = next(iter(Path(os.environ["HERMES_DATA_DIR"]).rglob("*.lock")), None)
        second = run(hermes_exe, "chat", "-m", str(models["hi"]), "--resume", conversation, input=b"")
        assert second.returncode == 2
        assert "is in use by another hermes (pid" in second.stderr.decode()


def test_a_json_error_says_where_once() -> None:
    """Issue 21, row 15: "Invalid control character at at column 12"."""
    from hermes_cli.engine.params import GenerationResult
    from hermes_cli.modes.json_mode import JsonMode, check_reply

    result = GenerationResult('{"a": "x\ny"}', [], "stop", 0, 0, 0, 0.0, 0.0)
    _value, problems = check_reply(result, JsonMode())
    assert problems == ["not valid JSON: Invalid control character at line 1 column 9"]
