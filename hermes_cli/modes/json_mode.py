"""Hermes JSON mode, made a guarantee: prompt + grammar + validation (+ bounded retry).

The model card's JSON mode is only a system prompt; the model usually obeys it. Here:
1. the Hermes JSON-mode system prompt with the schema (the user's own system prompt is
   kept after it);
2. sampling held to the schema by a grammar (modes/json_grammar.py), so the reply always
   parses, with structure, types, enums, required keys, lengths, patterns, numeric
   bounds and the common formats enforced, and dates always real calendar dates;
3. the parsed reply validated by a real JSON Schema validator, for what a grammar cannot
   hold (`not`, `uniqueItems`, if/then/else...); a violation is sent back to the model
   with the error (as the Hermes-Function-Calling scripts do) and retried, a bounded
   number of times, then reported. An invalid or truncated reply is never printed as
   if valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_cli import jsontext
from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.errors import OutputContractError, UsageError, cut_short
from hermes_cli.modes.events import Logic, Notice, Reply, Request, answer_message
from hermes_cli.modes.json_grammar import ANY_OBJECT, compile_schema
from hermes_cli.modes.json_schema import load_schema as _load_schema
from hermes_cli.modes.json_schema import validation_errors
from hermes_cli.prompt.messages import Message
from hermes_cli.prompt.reply_grammar import ReplyGrammar

# Verbatim from the Hermes-Function-Calling repository (README, "JSON mode").
SYSTEM_PROMPT = (
    "You are a helpful assistant that answers in JSON. "
    "Here's the json schema you must adhere to:\n<schema>\n{schema}\n</schema>"
)
DEFAULT_RETRIES = 2


@dataclass
class JsonMode:
    """What the user asked for: any object (`schema is None`) or a schema."""

    schema: dict[str, Any] | None = None
    source: str = "--json"
    # compile_schema's answer, for the schema as it was then (JSON text as the key)
    _compiled: tuple[str, tuple[ReplyGrammar, list[str], list[str]]] | None = field(
        default=None, repr=False, compare=False)

    def _compile(self) -> tuple[ReplyGrammar, list[str], list[str]]:
        key = json.dumps(self.schema, sort_keys=True)
        if self._compiled is None or self._compiled[0] != key:
            self._compiled = (key, compile_schema(self.schema))
        return self._compiled[1]

    @property
    def prompt_schema(self) -> dict[str, Any]:
        return self.schema if self.schema is not None else ANY_OBJECT

    def system_prompt(self, user_system: str | None = None) -> str:
        text = SYSTEM_PROMPT.format(schema=json.dumps(self.prompt_schema, ensure_ascii=False))
        return f"{text}\n\n{user_system}" if user_system else text

    def grammar(self) -> ReplyGrammar:
        return self._compile()[0]

    def check(self) -> None:
        """Raise UsageError now if no grammar can be built for the schema at all."""
        problems = self._compile()[2]
        if problems:
            raise UsageError(f"{self.source}: cannot build a grammar from this schema: "
                             + "; ".join(problems))

    def unenforced(self) -> list[str]:
        """What the grammar cannot hold the model to (checked after, with retries)."""
        return list(self._compile()[1])


def load_schema(spec: str, *, cwd: Path | None = None, name: str = "--schema") -> JsonMode:
    """`--schema` as a JsonMode: a file, inline JSON, or `module:Model`.

    Raises:
        UsageError: not JSON, not a valid JSON Schema, a remote `$ref`, or an import
            that fails; all before any model is loaded.
    """
    schema, source = _load_schema(spec, cwd=cwd, name=name)
    return JsonMode(schema=schema, source=source)


def check_reply(result: GenerationResult, mode: JsonMode) -> tuple[Any, list[str]]:
    """Parse one reply; return the value and what is wrong with it (empty: valid).

    Raises:
        OutputContractError: the reply was cut (max tokens, full context): incomplete
            JSON is never repaired or retried into something that looks whole.
    """
    if result.finish_reason in ("length", "context"):
        raise cut_short("the JSON reply", "it is incomplete, so nothing was printed", result.finish_reason,
                        result.completion_tokens)
    try:
        value = json.loads(result.text)
    except json.JSONDecodeError as e:
        return None, [f"not valid JSON: {jsontext.describe(e)}"]
    if mode.schema is None:
        return value, ([] if isinstance(value, dict) else ["the answer is not a JSON object"])
    return value, validation_errors(value, mode.schema)


def json_reply(messages: list[Message], mode: JsonMode, params: SamplingParams, *,
               retries: int = DEFAULT_RETRIES) -> Logic:
    """A reply that parses and validates, retrying with the error on failure.

    `messages` must already start with `mode.system_prompt(...)`; the retries go into a
    copy, so the reply adds only the final exchange to the conversation.
    """
    grammar = mode.grammar()
    history = list(messages)
    results: list[GenerationResult] = []
    problems: list[str] = []
    for _attempt in range(retries + 1):
        result = yield Request(history, params, grammar, show="json")
        results.append(result)
        answer = answer_message(result)
        if result.finish_reason == "interrupted":
            return Reply(result.text, [answer], results, stopped="interrupted")
        value, problems = check_reply(result, mode)
        if not problems:
            return Reply(result.text, [answer], results, value=value, rounds=len(results) - 1)
        yield Notice("the JSON broke the schema (" + "; ".join(problems[:3]) + "); asking again")
        history = history + [answer, Message(
            "user", "That JSON does not match the schema: " + "; ".join(problems[:5])
            + ". Answer again with only a JSON object that matches the schema.")]
    raise OutputContractError(
        f"the reply still broke the schema after {retries + 1} attempts: {problems[0]}"
        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
        hint="the server enforces the schema with its own grammar, or none: try a server that supports "
        "json_schema response_format" if not results[-1].enforced else
        "the schema uses keywords a grammar cannot enforce (see `hermes ask --help`)",
    )
