"""Models from the Hub: the real huggingface_hub client against a local Hub server."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

from hermes_cli.errors import DownloadError
from hermes_cli.hub import download as hub_download
from hermes_cli.hub.refs import HubRef, human_size, parse_ref, quant_of
from tests import children
from tests import tinymodels as tm
from tests.hubserver import HubServer, HubState, Repo

THETA = "NousResearch/Hermes-2-Theta-Llama-3-8B-GGUF"
Q4 = "Hermes-2-Pro-Llama-3-Instruct-Merged-DPO-Q4_K_M.gguf"
Q6 = "Hermes-2-Pro-Llama-3-Instruct-Merged-DPO-Q6_K.gguf"


@pytest.fixture(scope="module")
def split_parts(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("split")
    first = tm.write_model(d / "tiny-Q8_0.gguf", kind="bigram", bigram=tm.chain(b"Hi!"),
                           split_max_tensors=5)
    return {p.name: p.read_bytes() for p in sorted(first.parent.glob("tiny-Q8_0-*.gguf"))}


@pytest.fixture
def hub_server(models, split_parts, monkeypatch):
    hi, endless = models["hi"].read_bytes(), models["endless"].read_bytes()
    state = HubState(repos={
        THETA: Repo({Q4: hi, Q6: endless, "README.md": b"# Theta\n"}),
        "acme/split-GGUF": Repo(dict(split_parts)),
        "acme/gated-GGUF": Repo({"m.Q4_K_M.gguf": hi}, gated=True),
        "acme/private-GGUF": Repo({"m-q4_k_m.gguf": hi}, private=True),
        "acme/text-only": Repo({"README.md": b"nothing here"}),
    })
    with HubServer(state) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield state


def hermes(exe, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=env)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("name, quant", [
    (Q4, "Q4_K_M"), ("model.q6_k.gguf", "Q6_K"), ("x-IQ4_XS.gguf", "IQ4_XS"),
    ("m-Q8_0-00002-of-00003.gguf", "Q8_0"), ("model-f16.gguf", "F16"), ("model.gguf", None),
])
def test_quant_of(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant


@pytest.mark.parametrize("ref, expected", [
    ("x.gguf", Path("x.gguf")), ("./m", Path("m")),
    ("o/r", HubRef("o/r")), ("o/r:q6_k", HubRef("o/r", quant="q6_k")),
    ("o/r/sub/f.gguf", HubRef("o/r", filename="sub/f.gguf")),
])
def test_parse_ref(ref: str, expected) -> None:
    assert parse_ref(ref) == expected


def test_download_picks_the_quant_by_suffix_case_insensitively(hub_server, hermes_exe, models) -> None:
    proc = hermes(hermes_exe, "download", f"{THETA}:q6_k")
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path.name == Q6 and path.read_bytes() == models["endless"].read_bytes()
    assert Path(os.environ["HF_HOME"]) in path.parents  # the standard cache
    assert f"downloading {Q6}" in proc.stderr and ("MB" in proc.stderr or "KB" in proc.stderr)
    assert "it/s" not in proc.stderr and "B/s" not in proc.stderr  # no bar: not a terminal


def test_ask_end_to_end_from_the_default_repo_quant(hub_server, hermes_exe) -> None:
    proc = hermes(hermes_exe, "ask", "hello", "--model", THETA)  # default quant Q4_K_M
    assert (proc.returncode, proc.stdout) == (0, "Hi!\n"), proc.stderr
    proc = hermes(hermes_exe, "ask", "hello", "--quiet")  # no --model: Hermes Θ Q4_K_M
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "Hi!\n", "")


def test_a_cached_model_needs_no_network(hub_server, hermes_exe) -> None:
    assert hermes(hermes_exe, "download", THETA).returncode == 0
    before = len(hub_server.log)
    offline = hermes(hermes_exe, "ask", "x", "-m", THETA, env_extra={"HF_HUB_OFFLINE": "1"})
    unplugged = hermes(hermes_exe, "ask", "x", "-m", THETA, env_extra={"HF_ENDPOINT": closed_port_url()})
    online = hermes(hermes_exe, "ask", "x", "-m", THETA)
    assert [p.stdout for p in (offline, unplugged, online)] == ["Hi!\n"] * 3
    assert len(hub_server.log) == before  # not one request


def test_offline_and_not_cached_is_a_clear_error(hub_server, hermes_exe) -> None:
    proc = hermes(hermes_exe, "ask", "x", "-m", THETA, env_extra={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 5
    assert proc.stderr.startswith("Error: ") and "not cached" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_hub_and_not_cached_is_a_clear_error(hub_server, hermes_exe) -> None:
    proc = hermes(hermes_exe, "download", THETA, env_extra={"HF_ENDPOINT": closed_port_url()})
    assert proc.returncode == 5
    assert "cannot reach the Hub" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_quant_lists_what_exists_with_sizes(hub_server, hermes_exe, models) -> None:
    proc = hermes(hermes_exe, "download", f"{THETA}:Q9_K")
    assert proc.returncode == 5
    line = proc.stderr.splitlines()[0]
    assert "no Q9_K GGUF" in line and "Q4_K_M (" in line and "Q6_K (" in line
    assert human_size(models["hi"].stat().st_size) in line


def test_a_repository_without_ggufs(hub_server, hermes_exe) -> None:
    proc = hermes(hermes_exe, "download", "acme/text-only")
    assert proc.returncode == 5 and "no GGUF files" in proc.stderr


def test_missing_repository_404(hub_server, hermes_exe) -> None:
    proc = hermes(hermes_exe, "download", "acme/nope")
    assert proc.returncode == 5
    assert "repository not found" in proc.stderr and "HF_TOKEN" in proc.stderr


@pytest.mark.parametrize("repo, needle", [("acme/gated-GGUF", "is gated"),
                                          ("acme/private-GGUF", "repository not found")])
def test_gated_and_private_need_a_token(hub_server, hermes_exe, repo: str, needle: str) -> None:
    refused = hermes(hermes_exe, "download", repo)
    assert refused.returncode == 5
    assert needle in refused.stderr and "hf auth login" in refused.stderr
    allowed = hermes(hermes_exe, "download", repo, env_extra={"HF_TOKEN": "hf_test_token"})
    assert allowed.returncode == 0, allowed.stderr


def test_split_files_are_all_fetched_and_llama_cpp_gets_the_first(hub_server, hermes_exe,
                                                                   split_parts) -> None:
    proc = hermes(hermes_exe, "download", "acme/split-GGUF:Q8_0")
    assert proc.returncode == 0, proc.stderr
    first = Path(proc.stdout.strip())
    assert first.name.endswith("-00001-of-00003.gguf")
    assert sorted(p.name for p in first.parent.glob("*.gguf")) == sorted(split_parts)
    proc = hermes(hermes_exe, "ask", "x", "-m", "acme/split-GGUF:q8_0")
    assert (proc.returncode, proc.stdout) == (0, "Hi!\n"), proc.stderr


def test_a_transfer_cut_mid_file_resumes_with_a_range_request(hub_server, hermes_exe) -> None:
    # Larger than the client's 10 MiB write chunk, cut after the first chunk is on disk.
    big = os.urandom(12 * 1024 * 1024)
    hub_server.repos["acme/big-GGUF"] = Repo({"big-Q4_K_M.gguf": big})
    cut = 11 * 1024 * 1024
    hub_server.cut_after["big-Q4_K_M.gguf"] = cut
    proc = hermes(hermes_exe, "download", "acme/big-GGUF")
    ranges = [r for m, p, r in hub_server.log if p.endswith("big-Q4_K_M.gguf") and m == "GET"]
    if proc.returncode != 0:  # the client gave up: the next run picks up .incomplete
        assert proc.returncode == 5 and "Traceback" not in proc.stderr
        proc = hermes(hermes_exe, "download", "acme/big-GGUF")
        ranges = [r for m, p, r in hub_server.log if p.endswith("big-Q4_K_M.gguf") and m == "GET"]
    assert proc.returncode == 0, proc.stderr
    assert ranges[0] is None and ranges[-1] == f"bytes={10 * 1024 * 1024}-"  # chunk boundary
    assert Path(proc.stdout.strip()).read_bytes() == big


def test_a_killed_download_resumes_from_its_incomplete_file(hub_server, hermes_exe, models) -> None:
    data = models["hi"].read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    blobs = Path(os.environ["HF_HOME"]) / "hub" / ("models--" + THETA.replace("/", "--")) / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha}.incomplete").write_bytes(data[:12345])  # what a kill -9 leaves
    proc = hermes(hermes_exe, "download", THETA)
    assert proc.returncode == 0, proc.stderr
    assert [r for m, p, r in hub_server.log if m == "GET" and p.endswith(Q4)] == ["bytes=12345-"]
    assert Path(proc.stdout.strip()).read_bytes() == data


def test_a_corrupt_cached_file_is_detected_and_fetched_again(hub_server, hermes_exe) -> None:
    path = Path(hermes(hermes_exe, "download", THETA).stdout.strip())
    blob = path.resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    blob.write_bytes(bytes(data))
    proc = hermes(hermes_exe, "ask", "x", "-m", THETA)
    assert (proc.returncode, proc.stdout) == (0, "Hi!\n"), proc.stderr
    assert "corrupt" in proc.stderr
    offline_corrupt = bytearray(blob.read_bytes())
    offline_corrupt[100] ^= 0xFF
    blob.write_bytes(bytes(offline_corrupt))
    proc = hermes(hermes_exe, "ask", "x", "-m", THETA, env_extra={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 5 and proc.stdout == ""  # never loaded


def test_not_enough_disk_space_is_refused_before_downloading(hub_server, monkeypatch) -> None:
    class Usage:
        free = 1000

    monkeypatch.setattr(hub_download.shutil, "disk_usage", lambda _p: Usage)
    with pytest.raises(DownloadError, match="not enough disk space"):
        hub_download.download(HubRef(THETA))
    assert not [p for _m, p, _r in hub_server.log if "/resolve/" in p]


def test_models_lists_quants_cached_and_removes(hub_server, hermes_exe, models) -> None:
    hermes(hermes_exe, "download", THETA)
    listing = hermes(hermes_exe, "models", THETA).stdout
    assert "Q4_K_M" in listing and "Q6_K" in listing
    q4_line = next(line for line in listing.splitlines() if "Q4_K_M" in line)
    assert q4_line.rstrip().endswith("cached")
    assert "cached" not in next(line for line in listing.splitlines() if "Q6_K" in line)
    assert f"{THETA}:Q4_K_M" in hermes(hermes_exe, "models").stdout
    refused = hermes(hermes_exe, "models", "--rm", f"{THETA}:Q4_K_M")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    removed = hermes(hermes_exe, "models", "--rm", f"{THETA}:Q4_K_M", "--yes")
    assert removed.returncode == 0 and "deleted" in removed.stdout
    assert "no GGUF models cached" in hermes(hermes_exe, "models").stdout


def test_info_describes_build_and_model(hub_server, hermes_exe) -> None:
    proc = hermes(hermes_exe, "info")
    assert "GPU offload:" in proc.stdout and "not downloaded yet" in proc.stdout
    proc = hermes(hermes_exe, "info", "-m", THETA)
    assert proc.returncode == 0, proc.stderr
    for needle in ("architecture: llama", "trained context: 2048", "chat template: ChatML",
                   "eos token id"):
        assert needle in proc.stdout


def test_progress_bar_on_a_terminal(hub_server, hermes_exe) -> None:
    """In a real pty, stderr is a terminal: the bar shows size and speed."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(hermes_exe[0], [*hermes_exe, "download", THETA])
    children.RUNNING.append(pid)  # killed by conftest if this test fails before it exits
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    deadline = time.monotonic() + 60  # never block forever in waitpid: a hung child fails the test
    while not (reaped := os.waitpid(pid, os.WNOHANG))[0]:
        assert time.monotonic() < deadline, out.decode(errors="replace")[-2000:]
        time.sleep(0.05)
    children.RUNNING.remove(pid)
    status = reaped[1]
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "100%" in text and "/s" in text
