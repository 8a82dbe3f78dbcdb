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
def started(exe: list[str], *args: str, cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([*exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
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
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.core.session import ChatSession
    from hermes_cli.errors import UsageError

    session = ChatSession(load("hi"), Conversation(model="m"), autosave=False)
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
