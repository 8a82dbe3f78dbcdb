"""Fast-forward (issue 22): the tokens a grammar forces are taken unsampled, several per
llama_decode, with logits only at the last. Measured on a key-heavy schema (an invoice:
16 properties with short values, one nested object of 4), greedy and sampled:

- answer tokens per second (forced tokens count: they are the answer's) with
  fast-forward, against free decoding after the same prompt and against the same
  schema with --no-fast-forward; and the share of the answer's tokens that were forced;
- a forced tool call: the time from the end of the prompt to the first argument value.

The answers with and without fast-forward can differ (the forced bytes are tokenized
whole, as the grammar's tokenizer writes them), so each figure is a rate over several
seeds, and every answer is checked against the schema.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.common import SAMPLING
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.modes.json_grammar import schema_grammar
from hermes_cli.modes.json_mode import JsonMode
from hermes_cli.modes.json_schema import validation_errors
from hermes_cli.modes.tools.protocol import forced_call_grammar
from hermes_cli.modes.tools.protocol import system_prompt as tools_prompt
from hermes_cli.modes.tools.tool import Tool
from hermes_cli.prompt.call_format import ARGUMENTS_FIRST, NAME_FIRST
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message

INVOICE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string", "pattern": "^INV-[0-9]{4}$"},
        "date": {"type": "string", "format": "date"},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "status": {"enum": ["draft", "sent", "paid", "overdue"]},
        "customer": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 16},
            "country": {"type": "string", "minLength": 2, "maxLength": 2},
            "vat_id": {"type": "string", "maxLength": 10},
            "vip": {"type": "boolean"}},
            "required": ["name", "country", "vat_id", "vip"]},
        "subtotal": {"type": "integer", "minimum": 0, "maximum": 99999},
        "tax_rate": {"type": "integer", "minimum": 0, "maximum": 30},
        "tax": {"type": "integer", "minimum": 0, "maximum": 99999},
        "total": {"type": "integer", "minimum": 0, "maximum": 99999},
        "paid": {"type": "boolean"},
        "due_days": {"type": "integer", "minimum": 0, "maximum": 90},
        "payment_method": {"enum": ["card", "transfer", "cash"]},
        "discount_percent": {"type": "integer", "minimum": 0, "maximum": 50},
        "shipping_cost": {"type": "integer", "minimum": 0, "maximum": 999},
        "reference": {"type": "string", "maxLength": 8},
        "notes": {"type": "string", "maxLength": 16},
    },
}
INVOICE["required"] = list(INVOICE["properties"])
CALL_TOOL = Tool("book_meeting", "Book a meeting room.", {
    "type": "object", "properties": {"room": {"type": "string", "maxLength": 12},
                                     "attendees": {"type": "integer", "minimum": 1, "maximum": 50}},
    "required": ["room", "attendees"]})
SEEDS = (1, 2, 3)
_FIRST_VALUE = re.compile(r'"arguments": \{"[^"]+": ')


def _answer(engine: Engine, prompt: list[int], params: SamplingParams, grammar: Any) -> tuple[int, float, int, str]:
    """(answer tokens, seconds after the prompt, forced tokens, text) of one answer."""
    engine.forget()
    result = engine.generate(prompt, params, grammar=grammar).consume()
    return result.completion_tokens, result.generation_seconds, result.forced, result.text


def _invalid(text: str) -> bool:
    """The answer does not validate (or was cut by the 400-token limit)."""
    try:
        return bool(validation_errors(json.loads(text), INVOICE))
    except ValueError:
        return True


def _logprob_per_char(engine: Engine, prompt: list[int], text: str) -> float:
    """The model's own log-probability of `text` after `prompt`, in nats per character,
    the text tokenized the model's way (not as fast-forward wrote it): how natural the
    answer is to the model, whichever way it was produced."""
    import numpy as np

    c = engine._c
    ids = engine.tokenize(text)
    engine.forget()
    engine.evaluate(prompt)
    total = 0.0
    for token in ids:
        logits = np.ctypeslib.as_array(c.llama_get_logits_ith(engine.ctx, -1), shape=(engine.vocab.n_tokens,))
        top = float(logits.max())
        total += float(logits[token]) - top - float(np.log(np.exp(logits - top).sum()))
        engine.evaluate([token])
    engine.forget()
    return total / max(1, len(text))


def _first_value_seconds(engine: Engine, prompt: list[int], params: SamplingParams,
                         call_format: str = NAME_FIRST) -> float:
    """Seconds from the end of the prompt's evaluation to the first argument value."""
    engine.forget()
    gen = engine.generate(prompt, params, grammar=forced_call_grammar([CALL_TOOL], call_format))
    engine.evaluate(prompt[:-1])  # the prompt but its last token, outside the timing
    start, text = time.perf_counter(), ""
    for piece in gen:
        text += piece
        if _FIRST_VALUE.search(text):
            gen.close()
            return time.perf_counter() - start
    return float("nan")


def section(models: list[tuple[Path, str]], repeat: int) -> None:
    rows = []
    for path, label in models:
        engine = Engine.load(path, n_ctx=2048)
        chat = ChatML(engine)
        mode = JsonMode(INVOICE)
        prompt = chat.render([Message("system", mode.system_prompt()),
                              Message("user", "Write the invoice for an order of office chairs.")])
        tool_prompts = {fmt: chat.render([Message("system", tools_prompt([CALL_TOOL], call_format=fmt)),
                                          Message("user", "Book the blue room for six people.")])
                        for fmt in (NAME_FIRST, ARGUMENTS_FIRST)}
        engine.grammars.tokenizer()  # built once per model, not timed here
        grammar = schema_grammar(INVOICE)
        for kind, base in (("greedy", {"temperature": 0.0}), ("sampled", dict(SAMPLING))):
            ff_rates, off_rates, free_rates, forced_shares, invalid = [], [], [], [], 0
            ff_times, off_times = [], []
            answers: dict[str, set[str]] = {"ff": set(), "off": set()}
            for seed in SEEDS:
                for _ in range(repeat):
                    on = SamplingParams(**base, seed=seed, max_tokens=400)
                    n, s, forced, text = _answer(engine, prompt, on, grammar)
                    invalid += _invalid(text)
                    off = SamplingParams(**base, seed=seed, max_tokens=400, fast_forward=False)
                    n_off, s_off, _f, text_off = _answer(engine, prompt, off, grammar)
                    invalid += _invalid(text_off)
                    free = SamplingParams(**base, seed=seed, max_tokens=n, ignore_eos=True)
                    n_free, s_free, _f, _t = _answer(engine, prompt, free, None)
                    answers["ff"].add(text)
                    answers["off"].add(text_off)
                    ff_rates.append(n / s)
                    off_rates.append(n_off / s_off)
                    free_rates.append(n_free / s_free)
                    forced_shares.append(forced / n)
                    ff_times.append(s)
                    off_times.append(s_off)
            calls = {(fmt, ff): median(_first_value_seconds(engine, tool_prompts[fmt], SamplingParams(
                **base, seed=1, fast_forward=ff), fmt) for _ in range(repeat))
                for fmt in (NAME_FIRST, ARGUMENTS_FIRST) for ff in (True, False)}
            lp = {k: median(_logprob_per_char(engine, prompt, t) for t in v) for k, v in answers.items()}
            rows.append((label, kind, median(ff_rates), median(off_rates), median(free_rates),
                         median(forced_shares), median(ff_times), median(off_times), invalid, calls,
                         lp["ff"], lp["off"], len(answers["ff"]), len(answers["off"])))
        engine.close()

    print(f"## fast-forward: a key-heavy schema (invoice, 16 properties, one nested object), seeds {SEEDS}, "
          "medians; answer tokens/s count forced tokens")
    print("| model | sampling | fast-forward tok/s | vs free decoding | --no-fast-forward tok/s | ff vs no-ff "
          "| tokens forced | answer wall time, ff / no-ff | invalid or cut answers | forced call, name first: prompt "
          "end → first argument value, ff / no-ff | the same, arguments first (Hermes 2 Pro / Θ's card) | the "
          "model's log-prob of the answer, nats/char, ff / no-ff (distinct answers) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, kind, ff, off, free, share, t_on, t_off, invalid, calls, lp_on, lp_off, n_on, n_off in rows:
        by_format = [f"{calls[(fmt, True)] * 1000:.1f} / {calls[(fmt, False)] * 1000:.1f} ms"
                     for fmt in (NAME_FIRST, ARGUMENTS_FIRST)]
        print(f"| {label} | {kind} | {ff:.1f} | **{ff / free:.2f}×** | {off:.1f} | {ff / off:.2f}× | "
              f"{100 * share:.0f} % | {t_on * 1000:.0f} / {t_off * 1000:.0f} ms | {invalid} | "
              f"{by_format[0]} | {by_format[1]} | {lp_on:.3f} / {lp_off:.3f} ({n_on} / {n_off}) |")
    print()
