"""Hermes JSON mode, made a guarantee: prompt + grammar + validation (+ bounded retry).

The model card's JSON mode is only a system prompt; the model usually obeys it. Here:
1. the Hermes JSON-mode system prompt with the schema (the user's own system prompt is
   kept after it);
2. sampling constrained by a GBNF grammar from llama.cpp's JSON-Schema converter, so the
   reply always parses, with the structure, types, enums, required keys, array lengths,
   string lengths/patterns and the formats date, time, date-time and uuid enforced;
3. the parsed reply validated by a real JSON Schema validator (jsonschema), because the
   converter does not enforce minimum/maximum, multipleOf, other formats, `not`,
   if/then/else, uniqueItems...; a violation is sent back to the model with the error
   (as the Hermes-Function-Calling scripts do) and retried, a bounded number of times,
   then reported. An invalid or truncated reply is never printed as if valid.

Independent of the terminal: `ask`, `chat` and `batch` share it.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.errors import OutputContractError, UsageError
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message

# Verbatim from the Hermes-Function-Calling repository (README, "JSON mode").
SYSTEM_PROMPT = (
    "You are a helpful assistant that answers in JSON. "
    "Here's the json schema you must adhere to:\n<schema>\n{schema}\n</schema>"
)
ANY_OBJECT: dict[str, Any] = {"type": "object"}
DEFAULT_RETRIES = 2
_PYDANTIC_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass
class JsonMode:
    """What the user asked for: any object (`schema is None`) or a schema."""

    schema: dict[str, Any] | None = None
    source: str = "--json"

    @property
    def prompt_schema(self) -> dict[str, Any]:
        return self.schema if self.schema is not None else ANY_OBJECT

    def system_prompt(self, user_system: str | None = None) -> str:
        text = SYSTEM_PROMPT.format(schema=json.dumps(self.prompt_schema, ensure_ascii=False))
        return f"{text}\n\n{user_system}" if user_system else text

    def grammar_text(self) -> str:
        from hermes_cli.engine.gbnf import any_json_object_gbnf, json_schema_to_gbnf

        if self.schema is None:
            return any_json_object_gbnf()
        try:
            return json_schema_to_gbnf(self.schema)
        except Exception as e:  # the converter raises plain exceptions on what it can't do
            raise UsageError(f"{self.source}: llama.cpp cannot build a grammar from this "
                             f"schema: {e}") from None


def load_schema(spec: str, *, cwd: Path | None = None) -> JsonMode:
    """Parse `--schema`: a file, inline JSON, or `module:Model` (a pydantic model).

    Raises:
        UsageError: not JSON, not a valid JSON Schema, a remote `$ref`, or an import
            that fails; all before any model is loaded.
    """
    cwd = cwd or Path.cwd()
    text = spec.strip()
    if text.startswith("{"):
        schema, source = _parse_json(text, "--schema (inline)"), "--schema (inline)"
    elif (cwd / text).is_file():
        path = cwd / text
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read schema file {text}: {e}") from None
        schema, source = _parse_json(raw, text), text
    elif _PYDANTIC_PATH.match(text):
        schema, source = _pydantic_schema(text, cwd), text
    else:
        raise UsageError(f"--schema {text!r}: no such file, and not inline JSON or module:Model")
    check_schema(schema, source)
    return JsonMode(schema=schema, source=source)


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def _pydantic_schema(path: str, cwd: Path) -> dict[str, Any]:
    module_name, _, attr = path.partition(":")
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as e:
        raise UsageError(f"--schema {path}: cannot import {module_name}: {e}") from None
    except AttributeError:
        raise UsageError(f"--schema {path}: {module_name} has no {attr}") from None
    except Exception as e:  # the user's module raised while importing
        raise UsageError(f"--schema {path}: importing {module_name} failed: "
                         f"{type(e).__name__}: {e}") from None
    to_schema = getattr(obj, "model_json_schema", None)
    if not callable(to_schema):
        raise UsageError(f"--schema {path}: {attr} is not a pydantic model")
    return dict(to_schema())


def check_schema(schema: Any, source: str) -> None:
    """A schema we can enforce: a JSON Schema object, local references only."""
    if not isinstance(schema, dict):
        raise UsageError(f"{source}: a JSON Schema must be an object, not {type(schema).__name__}")
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise UsageError(f"{source}: remote $ref {ref!r} is not supported; "
                             "copy it under $defs and use '#/$defs/…'")
    from jsonschema import exceptions, validators

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "top level"
        raise UsageError(f"{source}: not a valid JSON Schema ({where}): {e.message}") from None


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def validation_errors(obj: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `obj` breaks `schema` (formats checked), as short readable lines."""
    from jsonschema import validators

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


@dataclass
class JsonAnswer:
    value: Any
    attempts: int
    results: list[GenerationResult]


def check_reply(result: GenerationResult, mode: JsonMode) -> tuple[Any, list[str]]:
    """Parse one reply; return the value and what is wrong with it (empty: valid).

    Raises:
        OutputContractError: the reply was cut (max tokens, full context): incomplete
            JSON is never repaired or retried into something that looks whole.
    """
    if result.finish_reason in ("length", "context"):
        why = "--max-tokens" if result.finish_reason == "length" else "the context size"
        raise OutputContractError(
            f"the JSON reply was cut after {result.completion_tokens} tokens by {why}: "
            "it is incomplete, so nothing was printed",
            hint="raise --max-tokens (or --ctx)",
        )
    try:
        value = json.loads(result.text)
    except json.JSONDecodeError as e:
        return None, [f"not valid JSON: {e.msg} at column {e.colno}"]
    if mode.schema is None:
        return value, ([] if isinstance(value, dict) else ["the answer is not a JSON object"])
    return value, validation_errors(value, mode.schema)


def answer(engine: Engine, chat: ChatML, messages: list[Message], mode: JsonMode,
           params: SamplingParams, *, retries: int = DEFAULT_RETRIES,
           grammar: Any | None = None) -> JsonAnswer:
    """Generate a reply that parses and validates, retrying with the error on failure.

    `messages` must already start with `mode.system_prompt(...)`; the retries are added
    to a copy, so the caller's history holds only the final exchange.
    """
    grammar = grammar if grammar is not None else engine.grammar(mode.grammar_text())
    history = list(messages)
    results: list[GenerationResult] = []
    for attempt in range(1, retries + 2):
        result = engine.generate(chat.render(history), params, grammar=grammar,
                                 strict_utf8=True).consume()
        results.append(result)
        value, problems = check_reply(result, mode)
        if not problems:
            return JsonAnswer(value, attempt, results)
        history += [
            Message("assistant", result.text, token_ids=result.token_ids),
            Message("user", "That JSON does not match the schema: " + "; ".join(problems[:5])
                    + ". Answer again with only a JSON object that matches the schema."),
        ]
    raise OutputContractError(
        f"the reply still broke the schema after {retries + 1} attempts: {problems[0]}"
        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
        hint="the schema uses keywords the grammar cannot enforce; see `hermes ask --help`",
    )
