"""`hermes serve`: a one-shot answer from the warm model against a cold `hermes ask` and
llama.cpp's `llama-completion -n 1`; and throughput at 1, 4 and 8 concurrent clients
against llama.cpp's own `llama-server --parallel 8` on the same model (when
scripts/build-llama-tools built it), the same client loop and requests for both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import SEED, timed_process, tool

N_PROMPTS = 32
MAX_TOKENS = 48
PARALLEL = 8
CTX = 8192
QUESTION = "Name a colour and say why you like it."

# Both servers get the very same requests from this loop (a process, as a client is).
LOOP = """
import asyncio, json, sys, time
from openai import AsyncOpenAI

async def main(url, bodies, concurrency):
    client = AsyncOpenAI(api_key="none", base_url=url, max_retries=3)
    gate = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(body):
        nonlocal tokens
        async with gate:
            extra = {k: body.pop(k) for k in ("ignore_eos", "repeat_penalty") if k in body} or None
            r = await client.chat.completions.create(**body, extra_body=extra)
            tokens += r.usage.completion_tokens

    t0 = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    print(json.dumps({"seconds": time.perf_counter() - t0, "tokens": tokens}))
    await client.close()

asyncio.run(main(sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            return
        except OSError:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)


def _hermes_serve(model: Path, tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port, log = _free_port(), tmp / "hermes-serve.log"
    exe = str(Path(sys.executable).parent / "hermes")
    proc = subprocess.Popen([exe, "serve", "-m", str(model), "--port", str(port), "--parallel", str(PARALLEL),
                             "--ctx", str(CTX), "-q"], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    _up(proc, url, log)
    return proc, url


def _llama_server(model: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    server = tool("llama-server")
    if server is None:
        return None
    port, log = _free_port(), tmp / "llama-server.log"
    proc = subprocess.Popen([server, "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
                             "-np", str(PARALLEL), "-c", str(CTX), "--no-webui"], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    _up(proc, url, log)
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _loop(url: str, bodies: Path, concurrency: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", LOOP, url, str(bodies), str(concurrency)], check=True,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return json.loads(out.stdout)


def section(models: list[tuple[Path, str]], repeat: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    env = dict(os.environ, HERMES_CACHE_DIR=str(tmp / "cache"), HERMES_DATA_DIR=str(tmp / "data"))
    exe = str(Path(sys.executable).parent / "hermes")
    completion = tool("llama-completion")
    for model, label in models:
        print(f"## hermes serve: {label}")
        proc, url = _hermes_serve(model, tmp, env)
        try:
            warm = min(timed_process([exe, "ask", "--endpoint", "local", QUESTION, "--max-tokens", "1"], env=env)
                       for _ in range(repeat))
        finally:
            _stop(proc)
        cold = min(timed_process([exe, "ask", "-m", str(model), QUESTION, "--max-tokens", "1", "-q"], env=env)
                   for _ in range(repeat))
        base = (min(timed_process([completion, "-m", str(model), "-p", QUESTION, "-n", "1", "-no-cnv",
                                   "--no-warmup"]) for _ in range(repeat)) if completion else None)
        print("| one-shot, 1 token | wall s | vs llama-completion -n 1 |")
        print("|---|---|---|")
        for name, t in (("hermes ask --endpoint local (warm hermes serve)", warm), ("hermes ask -m (cold)", cold)):
            print(f"| {name} | {t:.3f} | {f'**{t / base:.2f}×**' if base else 'not built'} |")
        if base:
            print(f"| llama-completion -n 1 | {base:.3f} | 1 |")
        print()
        _throughput(model, label, tmp, env, repeat)


def _throughput(model: Path, label: str, tmp: Path, env: dict[str, str], repeat: int) -> None:
    bodies = [{"model": "m", "messages": [{"role": "user", "content": f"Question {i}: {QUESTION}"}],
               "temperature": 0, "max_tokens": MAX_TOKENS, "seed": SEED, "ignore_eos": True,
               "repeat_penalty": 1.1}  # the model card's, hermes's default, asked of both
              for i in range(N_PROMPTS)]  # every answer MAX_TOKENS long on both servers
    file = tmp / "bodies.json"
    file.write_text(json.dumps(bodies))
    ours = _hermes_serve(model, tmp, env)
    theirs = _llama_server(model, tmp)
    print(f"| {N_PROMPTS} requests × {MAX_TOKENS} tokens, --parallel {PARALLEL} | hermes serve tok/s "
          f"| llama-server tok/s | hermes / llama-server |")
    print("|---|---|---|---|")
    try:
        for c in (1, 4, 8):
            a, b = [], []
            for _ in range(repeat):  # alternated: load on the machine hits both alike
                a.append(_loop(ours[1], file, c))
                if theirs:
                    b.append(_loop(theirs[1], file, c))
            ra = max(r["tokens"] / r["seconds"] for r in a)
            rb = max(r["tokens"] / r["seconds"] for r in b) if b else None
            print(f"| {c} clients | {ra:.1f} | {f'{rb:.1f}' if rb else 'not built'} | "
                  f"{f'**{ra / rb:.2f}×**' if rb else '–'} |")
    finally:
        _stop(ours[0])
        if theirs:
            _stop(theirs[0])
    print(f"({label})\n")


def schemas(data: Path | None, model: Path, per_category: int) -> None:
    """The JSONSchemaBench sample (benchmarks/schemabench.py's) through
    /v1/chat/completions `response_format: json_schema`, hermes serve against
    llama-server, the same messages to both (the Hermes JSON prompt with the schema: hermes
    serve writes it itself, llama-server is sent it)."""
    from benchmarks.schemabench import MAX_TOKENS as LIMIT
    from benchmarks.schemabench import PROMPT, _valid, sample
    from hermes_cli.modes.json_mode import JsonMode

    if data is None or not data.is_dir():
        print("(serve schemabench skipped: give --schemabench DIR)\n")
        return
    tmp = Path(tempfile.mkdtemp())
    env = dict(os.environ, HERMES_CACHE_DIR=str(tmp / "cache"), HERMES_DATA_DIR=str(tmp / "data"))
    picked = sample(data, per_category)
    servers = {"hermes serve": _hermes_serve(model, tmp, env)}
    peer = _llama_server(model, tmp)
    if peer:
        servers["llama-server"] = peer
    table: dict[str, list[tuple[str, float]]] = {name: [] for name in servers}
    try:
        for _category, file in picked:
            schema = json.loads(file.read_text())
            for name, (_proc, url) in servers.items():
                messages = [{"role": "user", "content": PROMPT}]
                if name != "hermes serve":
                    messages.insert(0, {"role": "system", "content": JsonMode(schema).system_prompt()})
                body = {"model": "m", "messages": messages, "max_tokens": LIMIT, "seed": SEED,
                        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}}
                table[name].append(_schema_outcome(url, body, schema, _valid))
    finally:
        for proc, _url in servers.values():
            _stop(proc)
    print(f"## JSONSchemaBench sample through /v1/chat/completions json_schema: {len(picked)} schemas, "
          f"{model.name}, {LIMIT} tokens, seed {SEED}")
    print("| server | valid answers | cut by the limit (or 422) | refused (400) | 200 but invalid | failed (5xx, "
          "connection) | time |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in table.items():
        kinds = [k for k, _s in rows]
        print(f"| {name} | {kinds.count('valid')}/{len(kinds)} | {kinds.count('cut')} | {kinds.count('refused')} | "
              f"{kinds.count('invalid')} | {kinds.count('failed')} | {sum(s for _k, s in rows):.0f} s |")
    print()


def _schema_outcome(url: str, body: dict, schema: dict, valid) -> tuple[str, float]:
    req = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            out = json.loads(r.read())
    except urllib.error.HTTPError as e:
        kind = "cut" if e.code == 422 else "refused" if e.code == 400 else "failed"
        return kind, time.perf_counter() - t0
    except OSError:
        return "failed", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    choice = out["choices"][0]
    if choice["finish_reason"] == "length":
        return "cut", seconds
    return ("valid" if valid(choice["message"]["content"] or "", schema) else "invalid"), seconds
