"""Decision mode (`ask --choices`) against the same labels asked for as a `--schema` enum
answer and as a free answer: lines per second, one model loaded, one line at a time,
greedy, the same prompts (issue 33's figure: the goal is at least 2x the enum answer)."""

from __future__ import annotations

import time
from pathlib import Path

from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.decision import decide, decision_messages
from hermes_cli.core.turn import run
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.modes.events import text_reply
from hermes_cli.modes.json_mode import JsonMode, json_reply
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message

LABELS = ["billing", "technical", "other"]
TICKETS = [
    "I was charged twice for my subscription this month.", "The app crashes when I open the settings page.",
    "Can I change the email address on my account?", "My invoice shows the wrong company name.",
    "The export button does nothing in Firefox.", "Do you have an office in Berlin?",
    "Refund the order I cancelled last week, please.", "Login fails with error 500 since this morning.",
    "What are your opening hours during the holidays?", "The card payment was declined but money was taken.",
    "Sync stopped working after the last update.", "I would like to give feedback about your support team.",
]


def _rate(fn, lines: list[str]) -> float:
    start = time.perf_counter()
    for line in lines:
        fn(line)
    return len(lines) / (time.perf_counter() - start)


def section(models: list[tuple[Path, str]], rounds: int) -> None:
    print("## decision mode: 3 labels, lines/s (one line at a time, greedy, the same prompts)")
    print("| model | --choices (exact probabilities) | --schema enum answer | free answer (≤ 8 tokens) "
          "| choices vs enum | choices vs free |")
    print("|---|---|---|---|---|---|")
    enum = JsonMode({"type": "object", "properties": {"label": {"enum": LABELS}}, "required": ["label"]})
    for path, label in models:
        engine = Engine.load(path, n_ctx=2048)
        backend = LocalBackend(engine, ChatML(engine))
        engine.grammars.tokenizer()  # built once per model, not timed
        greedy = SamplingParams(temperature=0, max_tokens=32)

        def choices(text: str) -> None:
            decide(backend, decision_messages(None, text, LABELS), LABELS)

        def schema(text: str) -> None:
            messages = [Message("system", enum.system_prompt()), Message("user", text)]
            run(backend, json_reply(messages, enum, greedy))

        def free(text: str) -> None:
            run(backend, text_reply(decision_messages(None, text, LABELS), SamplingParams(temperature=0, max_tokens=8)))

        lines = TICKETS * rounds
        choices(TICKETS[0])
        schema(TICKETS[0])  # warm: the grammar compiled, the caches filled
        rates = {name: _rate(fn, lines) for name, fn in (("choices", choices), ("schema", schema), ("free", free))}
        print(f"| {label} | {rates['choices']:.1f} | {rates['schema']:.1f} | {rates['free']:.1f} | "
              f"**{rates['choices'] / rates['schema']:.2f}×** | {rates['choices'] / rates['free']:.2f}× |")
        engine.close()
    print()
