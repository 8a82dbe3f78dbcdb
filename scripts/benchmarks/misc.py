"""Smaller sections: KV reuse over a chat, start-up, Markdown rendering, resuming with a
saved KV state."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import SEED, best, tm
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message


def reuse(models_dir: Path) -> None:
    model = tm.write_model(models_dir / "hi.gguf", kind="bigram", bigram=tm.chain(b"Hi!"))
    engine = Engine.load(model)
    chat = ChatML(engine)
    messages = [Message("system", "You are a helpful assistant.")]
    context: list[int] = []
    print("## prompt tokens evaluated per turn (10-turn chat)")
    print("| turn | prompt tokens | new tokens | evaluated | reused |")
    print("|---|---|---|---|---|")
    for turn in range(1, 11):
        messages.append(Message("user", f"This is question {turn}, about topic {turn * 7}."))
        prompt = chat.render(messages)
        result = engine.generate(prompt).consume()
        new = len(prompt) - len(context)
        ok = "" if result.prompt_evaluated == new else "  ← MISMATCH"
        print(f"| {turn} | {len(prompt)} | {new} | {result.prompt_evaluated} | "
              f"{result.prompt_reused} |{ok}")
        messages.append(Message("assistant", result.text, token_ids=result.token_ids))
        context = prompt + result.token_ids
    print()
    engine.close()


def startup(models_dir: Path, repeat: int, real: list[tuple[Path, str]]) -> None:
    """Whole processes, median of paired runs: `hermes --help` against a bare Python, and
    a one-shot `hermes ask` (one token) against llama.cpp's `llama-completion -n 1`."""
    import compileall

    from benchmarks.common import tool

    # An installed package has its bytecode compiled; a checkout may not (this machine
    # sets PYTHONDONTWRITEBYTECODE): compile it, or every run pays Python's compiler.
    compileall.compile_dir(str(Path(__file__).resolve().parents[2] / "hermes_cli"), quiet=1)
    exe = str(Path(sys.executable).parent / "hermes")

    def timed(*argv: str) -> float:
        t0 = time.perf_counter()
        subprocess.run(list(argv), check=True, capture_output=True, stdin=subprocess.DEVNULL)
        return time.perf_counter() - t0

    runs = max(repeat, 7)
    bare = statistics.median(timed(sys.executable, "-c", "pass") for _ in range(runs))
    help_s = statistics.median(timed(exe, "--help") for _ in range(runs))
    print("## start-up (median of paired whole-process runs)")
    print("| command | seconds | baseline | baseline seconds | ratio |")
    print("|---|---|---|---|---|")
    print(f"| `hermes --help` | {help_s:.3f} | `python -c pass` | {bare:.3f} | {help_s / bare:.2f}× |")
    completion = tool("llama-completion")
    tiny = tm.write_model(models_dir / "startup.gguf", kind="bigram", bigram=tm.chain(b"ab", end=None))
    for path, label in [(tiny, "tiny model"), *real]:
        ours, theirs = [], []
        for _ in range(runs):  # paired: each hermes run next to a llama.cpp run
            ours.append(timed(exe, "ask", "Hello", "-m", str(path), "--max-tokens", "1"))
            if completion:
                theirs.append(timed(completion, "-m", str(path), "-p", "Hello", "-n", "1", "-no-cnv"))
        o = statistics.median(ours)
        if theirs:
            t = statistics.median(theirs)
            print(f"| `hermes ask -m {label} --max-tokens 1` | {o:.3f} | `llama-completion -n 1` | "
                  f"{t:.3f} | **{o / t:.2f}×** |")
        else:
            print(f"| `hermes ask -m {label} --max-tokens 1` | {o:.3f} | llama-completion not built | – | – |")
    print()


def render() -> None:
    import io

    from rich.console import Console
    from rich.markdown import Markdown

    from hermes_cli.chat.render import MarkdownRenderer

    block = ("Some words in a paragraph, with *emphasis*, `code` and a [link](http://x).\n" * 3
             + "\n- item one\n- item two\n\n```python\nx = [i * i for i in range(10)]\n"
             "print(sum(x))\n```\n\n")
    text = block * 60
    tokens = [text[i:i + 4] for i in range(0, len(text), 4)][:4000]
    text = "".join(tokens)

    def streamed(draws_per_second: float = 12.0, pieces: list[str] = tokens) -> float:
        console = Console(file=io.StringIO(), width=100, height=40, force_terminal=True,
                          color_system="truecolor")
        r = MarkdownRenderer(console, refresh_per_second=draws_per_second)
        t0 = time.perf_counter()
        for tok in pieces:
            r.feed(tok)
        r.finish()
        return time.perf_counter() - t0

    # One 1,500-word paragraph drawn on every token: what a slow terminal or a fast model
    # costs per draw, now that a live block keeps a few rows (chat/block_heads.py).
    long = " ".join(f"word{i} **bold {i}** and `c{i}`" if i % 7 == 0 else f"word{i}" for i in range(1500))
    long_tokens = [long[i:i + 4] for i in range(0, len(long), 4)]

    def oneshot() -> float:
        console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="truecolor")
        t0 = time.perf_counter()
        console.print(Markdown(text))
        return time.perf_counter() - t0

    def json_streamed() -> float:
        """A 4,000-token JSON reply through the chat's reply view (its live area), as chat
        streams a --schema answer; was O(n^2): 20.9 s of host time before issue 30/32's fix."""
        from hermes_cli.chat.reply_view import ReplyView
        from hermes_cli.modes import events as ev

        pieces = [f'{{"id": {i}, ' if i % 4 == 0 else f'"k{i}": "v", ' for i in range(4000)]
        console = Console(file=io.StringIO(), width=100, height=40, force_terminal=True, color_system="truecolor")

        def events():
            for piece in pieces:
                yield ev.JsonDelta(piece)
            yield ev.Final(ev.Reply(text="".join(pieces), messages=[], results=[]))

        t0 = time.perf_counter()
        ReplyView(console, plain=False).show(events())
        return time.perf_counter() - t0

    s_t, o_t, j_t = best(streamed, 3), best(oneshot, 3), best(json_streamed, 3)
    every = best(lambda: streamed(1e9, long_tokens), 1)
    print(f"## rendering a {len(tokens)}-token Markdown reply, and a 4000-token JSON reply "
          "(live area on, 100×40 terminal)")
    print("| renderer | seconds | tokens/s |")
    print("|---|---|---|")
    print(f"| one rich Markdown render of the whole reply (baseline) | {o_t:.3f} | {len(tokens) / o_t:.0f} |")
    print(f"| hermes streaming renderer, token by token | {s_t:.3f} | {len(tokens) / s_t:.0f} "
          f"({s_t / o_t:.1f}× the one-shot time) |")
    print(f"| chat's JSON live view, 4000 deltas (was 20.9 s, O(n²)) | {j_t:.3f} | {4000 / j_t:.0f} |")
    print(f"| a {len(long_tokens)}-token paragraph drawn on every token (was 13.4 s: the live area held "
          f"the whole paragraph) | {every:.3f} | {len(long_tokens) / every:.0f} |")
    print()


def resume(models_dir: Path, repeat: int) -> None:
    model = tm.write_model(models_dir / "resume-random.gguf", kind="random", embedding=512,
                           blocks=4, context_length=8192)
    engine = Engine.load(model)
    chat = ChatML(engine)
    messages = [Message("system", "You are a helpful assistant.")]
    params = SamplingParams(seed=SEED, max_tokens=1)
    turn = 0
    while len(chat.render(messages)) < 3000:
        turn += 1
        messages.append(Message("user", f"Question {turn}: " + "tell me more about it " * 20))
        messages.append(Message("assistant", "Here is more. " * 30))
    context_ids = chat.render(messages, add_generation_prompt=False)
    engine.generate(context_ids + [chat.im_start], params).consume()  # build the KV cache
    state = models_dir / "resume.kv"
    engine.save_state(state)
    engine.close()
    question = messages + [Message("user", "And the last question?")]

    def ttft(with_state: bool) -> float:
        fresh = Engine.load(model)
        t0 = time.perf_counter()
        if with_state:
            fresh.load_state(state)
        fresh.generate(ChatML(fresh).render(question), params).consume()
        elapsed = time.perf_counter() - t0
        fresh.close()
        return elapsed

    with_state, without = best(lambda: ttft(True), repeat), best(lambda: ttft(False), repeat)
    size_mb = state.stat().st_size / 1e6
    print(f"## resuming a {len(context_ids)}-token conversation (random model, 512 wide, 4 layers)")
    print("| first reply | time to first token | |")
    print("|---|---|---|")
    print(f"| re-evaluating the history (baseline) | {without:.3f} s | 1.0× |")
    print(f"| with the saved KV state ({size_mb:.0f} MB file) | {with_state:.3f} s | "
          f"{without / with_state:.1f}× faster |")
    print()
