"""Shared fixtures: an isolated environment and tiny GGUF models written per session."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from tests import children
from tests import tinymodels as tm

# A suite started in the background of a non-interactive shell inherits SIGINT ignored,
# and every child would too (an ignored signal stays ignored across exec): the Ctrl-C
# tests then see no Ctrl-C. A handled signal is reset to its default in a child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _end_leftover_children():
    """Kill and reap whatever pty child a test left running (it failed before ending it)."""
    yield
    while children.RUNNING:
        pid = children.RUNNING.pop()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every user directory in tmp_path, no colour, a fixed width, no real Hub."""
    monkeypatch.setenv("HERMES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HERMES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("HERMES_MODEL", raising=False)
    monkeypatch.delenv("HERMES_DEBUG", raising=False)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of each tiny model (a few ms each to write)."""
    d = tmp_path_factory.mktemp("models")
    return {
        # Answers "Hi!" after the "\n" that ends every ChatML header, then <|im_end|>.
        "hi": tm.write_model(d / "hi.gguf", kind="bigram", bigram=tm.chain(b"Hi!")),
        # "é!" : the first byte alone is not valid UTF-8.
        "utf8": tm.write_model(d / "utf8.gguf", kind="bigram", bigram=tm.chain("é!".encode())),
        # Cycles "ab" forever: never stops by itself.
        "endless": tm.write_model(d / "endless.gguf", kind="bigram",
                                  bigram=tm.chain(b"ab", end=None), context_length=32768),
        "eot": tm.write_model(d / "eot.gguf", kind="bigram",
                              bigram=tm.chain(b"ok", end="<|eot_id|>")),
        "eot2": tm.write_model(d / "eot2.gguf", kind="bigram",
                               bigram=tm.chain(b"ok", end="<|end_of_text|>")),
        "random": tm.write_model(d / "random.gguf", kind="random"),
        # Random weights without the one-token <tool_call>: in free text it (practically)
        # never opens a call, so a tool loop's later rounds answer, on any seed.
        "random_plain": tm.write_model(d / "random_plain.gguf", kind="random", user_tokens=()),
        # Starts a tool call by itself after every assistant header ("\n" -> <tool_call>).
        "caller": tm.write_model(d / "caller.gguf", kind="bigram",
                                 bigram={tm.byte_token(0x0A): tm.token_id("<tool_call>")}),
        # Non-ChatML vocabularies with their own templates (prompt/jinja_template.py).
        # Llama-3's generation prompt ends "\n\n" (one merged token): "Hi!" follows it.
        "llama3_hi": tm.write_model(d / "llama3_hi.gguf", kind="bigram", family="llama3",
                                    bigram=_after_token(tm.chain(b"Hi!", end="<|eot_id|>", family="llama3"),
                                                        tm.token_id("ĊĊ", "llama3"))),
        "gemma_hi": tm.write_model(d / "gemma_hi.gguf", kind="bigram", family="gemma",
                                   bigram=tm.chain(b"Hi!", end="<end_of_turn>", family="gemma")),
        "llama3_random": tm.write_model(d / "llama3_random.gguf", kind="random", family="llama3"),
        "gemma_caller": tm.write_model(d / "gemma_caller.gguf", kind="bigram", family="gemma",
                                       bigram={tm.byte_token(0x0A): tm.token_id("<tool_call>", "gemma")}),
    }


def _after_token(table: dict[int, int], trigger: int) -> dict[int, int]:
    """A chain that starts after `trigger` instead of the newline byte."""
    table = dict(table)
    table[trigger] = table.pop(tm.byte_token(0x0A))
    return table


@pytest.fixture
def load(models: dict[str, Path]):
    """Load a tiny model by name through the real engine; closed after the test."""
    from hermes_cli.engine.model import Engine

    loaded: list[Engine] = []

    def _load(name: str, **kwargs) -> Engine:
        engine = Engine.load(models[name], n_threads=kwargs.pop("n_threads", 2), **kwargs)
        loaded.append(engine)
        return engine

    yield _load
    for engine in loaded:
        engine.close()


@pytest.fixture(scope="session")
def hermes_exe() -> list[str]:
    """The installed `hermes` console script (the one a user runs)."""
    exe = Path(sys.executable).parent / "hermes"
    if not exe.exists():
        found = shutil.which("hermes")
        assert found, "the hermes command is not installed: run scripts/test"
        exe = Path(found)
    return [str(exe)]
