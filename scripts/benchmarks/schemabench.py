"""Real-world schemas (JSONSchemaBench): hermes's JSON mode beside llama-cpp-python's own
`response_format` json_object + schema path, same model, same prompts.

The schemas are not in this repository: point `--schemabench DIR` (or
$HERMES_SCHEMABENCH) at the `data/` folder of a checkout of
github.com/guidance-ai/jsonschemabench. The sample is deterministic: per category, the
first `per_category` files by name under 6 KB (small schemas, so a 135M model can answer
within the token limit; a bias towards easy schemas, stated with the table).

Per engine: schemas accepted (a grammar could be built), answers that validate with an
independent validator (jsonschema, formats checked), answers cut by the token limit,
and time. The peer runs one schema per process: its GBNF converter has crashed the
process on real-world schemas (structured-output.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import SEED, smollm2

MAX_TOKENS = 256
CATEGORIES = ("Github_trivial", "Github_easy", "Github_medium", "Github_hard", "Glaiveai2K", "Kubernetes",
              "Snowplow", "WashingtonPost", "JsonSchemaStore")
PROMPT = "Give an example of a JSON object that matches the schema, with realistic values."

_PEER = r'''
import json, sys
from llama_cpp import Llama
path, schema_file, max_tokens, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
schema = json.load(open(schema_file))
llm = Llama(model_path=path, n_ctx=4096, verbose=False, seed=seed)
system = ("You are a helpful assistant that answers in JSON. Here's the json schema you must adhere to:\n"
          "<schema>\n" + json.dumps(schema) + "\n</schema>")
try:
    out = llm.create_chat_completion(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": sys.argv[5]}],
        response_format={"type": "json_object", "schema": schema}, max_tokens=max_tokens,
        temperature=0.8, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.1, seed=seed)
except Exception as e:
    print(json.dumps({"refused": f"{type(e).__name__}: {e}"[:200]}))
    sys.exit(0)
choice = out["choices"][0]
print(json.dumps({"text": choice["message"]["content"], "finish": choice["finish_reason"]}))
'''


def sample(data: Path, per_category: int) -> list[tuple[str, Path]]:
    picked = []
    for category in CATEGORIES:
        folder = data / category
        if not folder.is_dir():
            continue
        files = [f for f in sorted(folder.glob("*.json")) if f.stat().st_size < 6000][:per_category]
        picked += [(category, f) for f in files]
    return picked


def _valid(text: str, schema: dict) -> bool:
    from jsonschema import validators

    try:
        value = json.loads(text)
        cls = validators.validator_for(schema)
        return not list(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value))
    except Exception:  # noqa: BLE001 - an answer or schema the validator cannot take counts as invalid
        return False


def _hermes(engine, schema: dict) -> tuple[str, float]:
    """outcome ("valid", "invalid", "cut", "refused") and seconds."""
    from hermes_cli.core.backends import LocalBackend
    from hermes_cli.core.turn import run
    from hermes_cli.engine.params import SamplingParams
    from hermes_cli.errors import HermesError
    from hermes_cli.modes.json_mode import JsonMode, json_reply
    from hermes_cli.prompt.chatml import ChatML
    from hermes_cli.prompt.messages import Message

    mode = JsonMode(schema, "bench")
    t0 = time.perf_counter()
    try:
        mode.check()
        messages = [Message("system", mode.system_prompt()), Message("user", PROMPT)]
        reply = run(LocalBackend(engine, ChatML(engine)),
                    json_reply(messages, mode, SamplingParams(seed=SEED, max_tokens=MAX_TOKENS)))
    except HermesError as e:
        outcome = "cut" if "cut after" in str(e) else "refused" if "grammar" in str(e) else "invalid"
        return outcome, time.perf_counter() - t0
    except Exception:  # noqa: BLE001 - a schema llguidance or the validator rejects outright
        return "refused", time.perf_counter() - t0
    # hermes printed this as valid: an independent validator must agree
    if not _valid(reply.text, schema):
        return "PRINTED-INVALID", time.perf_counter() - t0
    return ("valid, closed to fit" if reply.last.closed else "valid"), time.perf_counter() - t0


def _peer(path: Path, file: Path, schema: dict) -> tuple[str, float]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _PEER, str(path), str(file), str(MAX_TOKENS), str(SEED), PROMPT],
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "refused", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not proc.stdout.strip():
        return "crashed", seconds
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "refused" in out:
        return "refused", seconds
    if out["finish"] == "length":
        return "cut", seconds
    return ("valid" if _valid(out["text"], schema) else "invalid"), seconds


def section(data: Path | None, per_category: int = 3) -> None:
    data = data or (Path(os.environ["HERMES_SCHEMABENCH"]) if os.environ.get("HERMES_SCHEMABENCH") else None)
    path = smollm2()
    if data is None or not data.is_dir() or path is None:
        print("(schemabench skipped: give --schemabench DIR, the data/ folder of a jsonschemabench checkout)\n")
        return
    from hermes_cli.engine.model import Engine

    picked = sample(data, per_category)
    engine = Engine.load(path, n_ctx=4096)
    rows = []
    for category, file in picked:
        schema = json.loads(file.read_text())
        rows.append((category, file.name, *_hermes(engine, schema), *_peer(path, file, schema)))
    engine.close()
    print(f"## JSONSchemaBench sample: {len(rows)} schemas ({per_category} per category, the first by name "
          f"under 6 KB), SmolLM2-135M-Instruct, {MAX_TOKENS} tokens, seed {SEED}")
    print("| engine | schemas accepted | answers valid (jsonschema, formats on) | cut by the limit "
          "| printed as valid but invalid | crashed | time |")
    print("|---|---|---|---|---|---|---|")
    for label, at in (("hermes (llguidance, fast-forward)", 2), ("llama-cpp-python json_object + schema", 4)):
        outcomes = [r[at] for r in rows]
        seconds = sum(r[at + 1] for r in rows)
        n = len(outcomes)
        accepted = n - outcomes.count("refused") - outcomes.count("crashed")
        valid = sum(o.startswith("valid") for o in outcomes)
        closed = outcomes.count("valid, closed to fit")
        print(f"| {label} | {accepted}/{n} | {valid}/{n}{f' ({closed} closed to fit)' if closed else ''} | "
              f"{outcomes.count('cut')} | "
              f"{outcomes.count('PRINTED-INVALID') if at == 2 else 'n/a (no validation)'} | "
              f"{outcomes.count('crashed')} | {seconds:.0f} s |")
    print()
    print("| category | schema | hermes | llama-cpp-python |")
    print("|---|---|---|---|")
    for category, name, ours, _s, peer, _p in rows:
        print(f"| {category} | {name} | {ours} | {peer} |")
    print()
