"""A JSON Schema -> the grammar that holds the model to it while it writes.

The schema is compiled natively by llguidance (engine/constraint.py), after three
changes that make it stricter, never looser, than the schema the answer is validated
against:

- `date`, `date-time` and `time` become exact patterns: only real calendar dates (no
  April 31st; February 29th only in leap years: divisible by 4, not by 100 unless by
  400), hours 00-23, minutes and seconds 00-59, a `Z` or `±hh:mm` offset. Such answers
  never need a retry.
- An object with `properties` and no `additionalProperties` gets
  `additionalProperties: false` (what the Hermes prompt implies, and what llama.cpp's own
  converter does; JSON Schema's default would let the model invent keys), unless it is
  combined with others (allOf, or beside anyOf/oneOf/$ref), where that would exclude
  the other parts' properties.
- The answer is written with json.dumps's separators (`, ` and `: `) and no other
  whitespace, the form the Hermes prompt shows schemas and calls in: one line that jq
  and JSONL take as it is, no blanks for a weak model to loop on, and every separator
  and the quote after it forced, so fast-forward (engine/constraint.py) writes them
  without sampling. An integer without bounds stays within ±(2^53 - 1), the range every
  JSON reader keeps exact (llama.cpp's converter caps integers at 16 digits likewise),
  so a model cannot loop on digits either.

What llguidance cannot enforce it reports by name; the grammar is then built leniently
(those keywords ignored while sampling) and the answer is still validated in full.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hermes_cli.prompt.reply_grammar import ReplyGrammar

_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001-9999
_DIV4 = r"(?:0[48]|[2468][048]|[13579][26])"  # 04..96 step 4 (never 00)
_LEAP_YEAR = rf"(?:[0-9]{{2}}{_DIV4}|{_DIV4}00)"
_MONTH_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
              r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              r"|02-(?:0[1-9]|1[0-9]|2[0-8]))")
DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
DATE_TIME = rf"{DATE}T{TIME}"
_FORMATS = {"date": DATE, "time": TIME, "date-time": DATE_TIME}
# json.dumps's separators, and no whitespace anywhere else (llguidance's x-guidance keys).
_SEPARATORS = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
SAFE_INTEGER = 2**53 - 1  # the largest integer every JSON reader keeps exactly


def schema_grammar(schema: dict[str, Any] | None) -> ReplyGrammar:
    """The grammar for answers to `schema` (None: any JSON object)."""
    return compile_schema(schema)[0]


def compile_schema(schema: dict[str, Any] | None) -> tuple[ReplyGrammar, list[str], list[str]]:
    """The grammar for `schema`, what it cannot enforce while sampling, and why it cannot
    be built at all (empty: it can), with llguidance compiling it once, or twice when
    it has to go lenient. JsonMode keeps the result: a schema is compiled here once per
    process, not once per question asked about it."""
    from hermes_cli.engine.grammars import check_grammar

    strict = grammar_schema(schema, lenient=False)
    missing = check_grammar("json_schema", json.dumps(strict))
    final = grammar_schema(schema, lenient=True) if missing else strict
    problems = check_grammar("json_schema", json.dumps(final)) if missing else []
    grammar = ReplyGrammar("json_schema", json.dumps(final),
                           server_schema=schema if schema is not None else ANY_OBJECT)
    return grammar, missing, problems


def grammar_schema(schema: dict[str, Any] | None, *, lenient: bool | None = None) -> dict[str, Any]:
    """The schema as the grammar sees it (see the module docstring). `lenient=None` asks
    llguidance whether it can enforce everything, and goes lenient only if not."""
    tightened = _tighten(copy.deepcopy(schema if schema is not None else ANY_OBJECT))
    if not isinstance(tightened, dict):
        tightened = {"anyOf": [tightened]}
    options: dict[str, Any] = dict(_SEPARATORS)
    tightened["x-guidance"] = options
    if lenient is None:
        lenient = bool(unenforced(tightened))
    if lenient:
        options["lenient"] = True
    return tightened


def unenforced(schema: dict[str, Any] | None) -> list[str]:
    """What llguidance cannot hold the model to while sampling (validated after instead)."""
    from hermes_cli.engine.grammars import check_grammar

    full = schema if schema is not None and "x-guidance" in schema else grammar_schema(schema, lenient=False)
    return check_grammar("json_schema", json.dumps(full))


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LITERALS = ("enum", "const", "default", "examples")


def _tighten(node: Any, *, merged: bool = False) -> Any:
    """A copy of a schema node with the module's three changes, recursively. `merged`:
    the node is intersected with others (an allOf branch), so it closes no object."""
    if isinstance(node, list):
        return [_tighten(n, merged=merged) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _tighten(sub) for name, sub in value.items()}
        elif key in _LITERALS:
            out[key] = value
        else:
            out[key] = _tighten(value, merged=key == "allOf")
    fmt = out.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS and "pattern" not in out:
        out.pop("format")
        out["pattern"] = f"^{_FORMATS[fmt]}$"
    if out.get("type") == "integer" and "minimum" not in out and "exclusiveMinimum" not in out:
        out["minimum"] = -SAFE_INTEGER
    if out.get("type") == "integer" and "maximum" not in out and "exclusiveMaximum" not in out:
        out["maximum"] = SAFE_INTEGER
    combined = merged or any(k in out for k in ("allOf", "anyOf", "oneOf", "$ref"))
    if ("properties" in out and not combined and "additionalProperties" not in out
            and "patternProperties" not in out):
        out["additionalProperties"] = False
    return out
