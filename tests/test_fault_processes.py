"""The fault table's process rows: kill -9, a full disk, signals during a reply, a Hub
that fails. Each test is bounded in time and checks that nothing was lost."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import children
from tests.hubserver import HubServer, HubState, Repo
from tests.test_chat_terminal import Terminal, env_for

# A full disk, made controllable: RLIMIT_FSIZE caps the size of any file the child
# writes, and its writes past the cap fail (EFBIG) as they would on a full filesystem.
# (CPython ignores SIGXFSZ, so the process sees the error instead of being killed.)


def capped(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def records(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n") or not text
    return [json.loads(line) for line in text.splitlines()]


def test_kill_9_twenty_times_then_resume_gives_one_record_per_id(hermes_exe, models, tmp_path: Path) -> None:
    n = 120
    (tmp_path / "in.txt").write_text("\n".join(f"q{i}" for i in range(n)) + "\n")
    out = tmp_path / "out.jsonl"
    cmd = [*hermes_exe, "batch", str(tmp_path / "in.txt"), "-o", str(out), "-m", str(models["endless"]),
           "--max-tokens", "16", "-q"]
    rng = random.Random(9)
    kills = 0
    deadline = time.monotonic() + 240
    while kills < 20:
        before = out.read_bytes().count(b"\n") if out.exists() else 0
        if before >= n - 3:
            break
        target = before + rng.randint(1, 3)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        with children.ended(proc):  # killed however the test ends
            while (not out.exists() or out.read_bytes().count(b"\n") < target) and proc.poll() is None:
                assert time.monotonic() < deadline, "the batch stopped making progress"
                time.sleep(0.001)  # polling the file, not waiting for something to happen
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        kills += 1
        records(out)  # every record whole and parseable after each kill (a torn tail is cut on resume)
    assert kills == 20
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr
    recs = records(out)
    assert sorted(r["id"] for r in recs) == list(range(1, n + 1))
    assert {r["output"] for r in recs} == {"ab" * 8}


def _torn_tail_ok(path: Path) -> None:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)


def test_a_full_disk_while_writing_batch_output(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("\n".join(f"q{i}" for i in range(30)) + "\n")
    out = tmp_path / "out.jsonl"
    cmd = [*hermes_exe, "batch", str(tmp_path / "in.txt"), "-o", str(out), "-m", str(models["hi"]), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          preexec_fn=capped(1000))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: cannot write results to") and "records before are whole" in proc.stderr
    _torn_tail_ok(out)  # the record that did not fit is not left half-written
    kept = len(records(out))
    assert 0 < kept < 30
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and len(records(out)) == 30  # space again: it resumes


def test_a_full_disk_while_saving_a_chat_keeps_the_previous_session(hermes_exe, models, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"]), "--ctx", "8192"], env,
                    preexec=capped(6000))
    term.expect(r"(^|\n)>")
    term.send("first\r")
    term.expect(r"3 tokens[^\n]*\n[\s\S]*>")
    saved = next((tmp_path / "data" / "sessions").glob("*.json"))
    good = saved.read_text()
    term.send("x" * 5500 + "\r")  # its session file would pass the cap
    term.expect(r"error: could not save the conversation: File too large")
    term.expect(r"3 tokens[^\n]*\n[\s\S]*3 tokens[^\n]*\n[\s\S]*>")  # the chat went on
    term.send("/exit\r")
    assert term.wait() == 0
    assert saved.read_text() == good  # the last whole version, not a torn one
    assert [m["content"] for m in json.loads(good)["messages"]] == ["first", "Hi!"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_streaming_reply_saves_the_partial_reply(hermes_exe, models, tmp_path: Path,
                                                                  sig: int) -> None:
    term = Terminal([*hermes_exe, "chat", "-m", str(models["endless"]), "--ctx", "0"], env_for(tmp_path))
    term.expect(r"(^|\n)>")
    term.send("go\r")
    term.expect(r"(ab){20}")
    os.kill(term.pid, sig)
    assert term.wait() == 128 + sig
    saved = next((tmp_path / "data" / "sessions").glob("*.json"))
    messages = json.loads(saved.read_text())["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"].startswith("abab")
    assert list((tmp_path / "data" / "sessions").glob("*.kv"))  # the KV state too
    raw = term.raw
    assert raw.rfind(b"\x1b[?25h") > raw.rfind(b"\x1b[?25l")  # the cursor is shown again


# -- the Hub failing ----------------------------------------------------------------------

@pytest.fixture
def hub(monkeypatch):
    state = HubState()
    with HubServer(state) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("HERMES_RETRY_BASE_SECONDS", "0.01")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield state


@pytest.mark.parametrize("failures", [
    [(500, {})], [(503, {}), (500, {})], [(429, {"Retry-After": "0"})], [(429, {"Retry-After": "1"})]])
def test_the_hub_failing_for_a_moment_is_retried_then_verified(hub, hermes_exe, models, failures) -> None:
    data = models["hi"].read_bytes()
    hub.repos["acme/m-GGUF"] = Repo({"m-Q4_K_M.gguf": data})
    hub.fail["m-Q4_K_M.gguf"] = list(failures)
    hub.fail["api/models/acme/m-GGUF"] = [(500, {})]
    proc = subprocess.run([*hermes_exe, "download", "acme/m-GGUF"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).read_bytes() == data
    statuses = [s for m, p, s in hub.answers if m == "GET" and p.endswith("m-Q4_K_M.gguf")]
    assert statuses[: len(failures)] == [code for code, _ in failures] and statuses[-1] in (200, 206)


def test_a_cut_connection_and_then_a_500_resume_from_the_partial_file(hub, hermes_exe) -> None:
    big = os.urandom(12 * 1024 * 1024)
    hub.repos["acme/big-GGUF"] = Repo({"big-Q4_K_M.gguf": big})
    hub.cut_after["big-Q4_K_M.gguf"] = 11 * 1024 * 1024
    hub.fail["big-Q4_K_M.gguf"] = [(200, {}), (500, {})]  # the first GET is served (and cut)
    proc = subprocess.run([*hermes_exe, "download", "acme/big-GGUF"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).read_bytes() == big
    ranges = [r for m, p, r in hub.log if p.endswith("big-Q4_K_M.gguf") and m == "GET"]
    assert ranges[0] is None and ranges[-1] is not None  # the last request resumed
