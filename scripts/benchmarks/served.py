"""`hermes batch --endpoint` against a served engine the benchmark starts (llama.cpp's
llama-server with --parallel 8 when scripts/build-llama-tools built it, else
llama-cpp-python's server), at concurrency 1, 4 and 8, against a plain asyncio loop
(the `openai` AsyncOpenAI client, a semaphore) sending the very same requests."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import SEED, tool
from hermes_cli.engine.params import SamplingParams
from hermes_cli.prompt.messages import Message
from hermes_cli.served.backend import ServedBackend, wire_messages
from hermes_cli.served.client import Endpoint
from hermes_cli.served.pool import EndpointPool

N_PROMPTS = 64
MAX_TOKENS = 48


def _start(model: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    server = tool("llama-server")
    if server:
        argv = [server, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-np", "8",
                "-c", "8192", "--no-webui"]
        kind = "llama-server --parallel 8"
    else:
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                "--port", str(port), "--n_ctx", "8192", "--interrupt_requests", "False"]
        kind = "llama-cpp-python's server (one request at a time)"
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return proc, kind
        except OSError:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)


# The baseline, run as a process like hermes (both pay Python's start and the client's
# import): the same requests through AsyncOpenAI, `concurrency` in flight.
PLAIN_LOOP = """
import asyncio, json, sys
from openai import AsyncOpenAI

async def main(url, bodies, concurrency):
    client = AsyncOpenAI(api_key="none", base_url=url + "/v1", max_retries=3)  # keep-alive races
    gate = asyncio.Semaphore(concurrency)

    async def one(body):
        async with gate:
            stream = await client.chat.completions.create(stream=True, **body)
            async for _chunk in stream:
                pass

    await asyncio.gather(*(one(b) for b in bodies))
    await client.close()

asyncio.run(main(sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])))
"""


def _plain_loop(url: str, bodies_file: Path, concurrency: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", PLAIN_LOOP, url, str(bodies_file), str(concurrency)],
                   check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0


def section(model: Path, label: str, concurrencies: list[int], repeat: int) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp())
    proc, kind = _start(model, port, tmp / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        prompts = [f"Question {i}: name a colour and say why you like it." for i in range(N_PROMPTS)]
        (tmp / "in.txt").write_text("\n".join(prompts) + "\n")
        params = SamplingParams(temperature=0, max_tokens=MAX_TOKENS, seed=SEED)
        names = json.loads(urllib.request.urlopen(url + "/v1/models").read())["data"]
        served = ServedBackend(EndpointPool([Endpoint(url)]), names[0]["id"])
        bodies = []
        for p in prompts:  # exactly what hermes sends for each line
            body = served.request([Message("user", p)], params)
            body["messages"] = wire_messages([Message("user", p)])
            bodies.append(body)
        (tmp / "bodies.json").write_text(json.dumps(bodies))
        exe = str(Path(sys.executable).parent / "hermes")
        print(f"## hermes batch --endpoint: {N_PROMPTS} prompts × {MAX_TOKENS} tokens, {label}, {kind}")
        print("| concurrency | hermes batch prompts/s | tokens/s | plain async loop prompts/s "
              "| hermes / loop | hermes vs concurrency 1 |")
        print("|---|---|---|---|---|---|")
        base = None
        for c in concurrencies:
            ours, theirs = [], []
            for _ in range(repeat):  # alternated, so load on the machine hits both alike
                out = tmp / f"out{c}.jsonl"
                out.unlink(missing_ok=True)
                t0 = time.perf_counter()
                subprocess.run([exe, "batch", str(tmp / "in.txt"), "-o", str(out), "--endpoint", url,
                                "--temperature", "0", "--max-tokens", str(MAX_TOKENS), "--seed", str(SEED),
                                "--concurrency", str(c), "-q"], check=True, stdin=subprocess.DEVNULL)
                ours.append(time.perf_counter() - t0)
                theirs.append(_plain_loop(url, tmp / "bodies.json", c))
            tokens = sum(json.loads(x)["completion_tokens"] for x in out.read_text().splitlines())
            o, t = min(ours), min(theirs)
            base = base or o
            print(f"| {c} | {N_PROMPTS / o:.2f} | {tokens / o:.1f} | {N_PROMPTS / t:.2f} | "
                  f"**{t / o:.3f}×** | {base / o:.2f}× |")
        print()
    finally:
        proc.terminate()
        proc.wait()
