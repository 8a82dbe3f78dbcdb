"""JSON mode through the real engine: a random-weight model, so the grammar must carry it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.turn import run
from hermes_cli.engine.params import SamplingParams
from hermes_cli.engine.slot import CLOSING_WINDOW
from hermes_cli.errors import OutputContractError, UsageError
from hermes_cli.modes import json_mode as jsonmode
from hermes_cli.modes.events import Reply
from hermes_cli.modes.json_schema import check_schema, validation_errors
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message

NAME = {"type": "string", "maxLength": 12}
SCHEMAS: dict[str, dict] = {
    "flat": {"type": "object", "properties": {"name": NAME, "age": {"type": "integer"}},
             "required": ["name", "age"]},
    "nested": {"type": "object", "properties": {"person": {"type": "object", "properties": {
        "name": NAME, "address": {"type": "object", "properties": {"city": NAME},
                                  "required": ["city"]}}, "required": ["name", "address"]}},
               "required": ["person"]},
    "array_bounds": {"type": "object", "properties": {"tags": {
        "type": "array", "items": NAME, "minItems": 2, "maxItems": 4}}, "required": ["tags"]},
    "enum": {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}},
             "required": ["color"]},
    "const": {"type": "object", "properties": {"kind": {"const": "invoice"}, "n": {"type": "integer"}},
              "required": ["kind", "n"]},
    "any_of": {"type": "object", "properties": {"v": {"anyOf": [{"type": "integer"}, NAME]}},
               "required": ["v"]},
    "one_of_objects": {"type": "object", "properties": {"shape": {"oneOf": [
        {"type": "object", "properties": {"r": {"type": "number"}}, "required": ["r"],
         "additionalProperties": False},
        {"type": "object", "properties": {"w": {"type": "integer"}, "h": {"type": "integer"}},
         "required": ["w", "h"], "additionalProperties": False}]}}, "required": ["shape"]},
    "defs_ref": {"$defs": {"item": {"type": "object", "properties": {"sku": NAME, "qty": {
        "type": "integer"}}, "required": ["sku", "qty"]}}, "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 3}},
        "required": ["items"]},
    "optional": {"type": "object", "properties": {"a": {"type": "boolean"}, "b": NAME,
                                                  "c": {"type": "null"}}, "required": ["a"]},
    "no_extra": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
                 "additionalProperties": False},
    "pattern": {"type": "object", "properties": {"code": {"type": "string",
                                                          "pattern": "^[A-Z]{3}-[0-9]{2}$"}},
                "required": ["code"]},
    "string_lengths": {"type": "object", "properties": {"s": {"type": "string", "minLength": 2,
                                                              "maxLength": 5}}, "required": ["s"]},
    "date": {"type": "object", "properties": {"d": {"type": "string", "format": "date"}},
             "required": ["d"]},
    "date_time": {"type": "object", "properties": {"t": {"type": "string", "format": "date-time"}},
                  "required": ["t"]},
    "time": {"type": "object", "properties": {"t": {"type": "string", "format": "time"}},
             "required": ["t"]},
    "uuid": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}},
             "required": ["id"]},
    "numbers": {"type": "object", "properties": {"price": {"type": "number"},
                                                 "count": {"type": "integer"}},
                "required": ["price", "count"]},
    "booleans_null": {"type": "object", "properties": {"ok": {"type": "boolean"},
                                                       "none": {"type": "null"}},
                      "required": ["ok", "none"]},
    "tuple": {"type": "object", "properties": {"pair": {"type": "array", "prefixItems": [
        {"type": "integer"}, {"type": "boolean"}], "items": False}}, "required": ["pair"]},
    "nullable": {"type": "object", "properties": {"v": {"anyOf": [
        {"type": "string", "maxLength": 8}, {"type": "null"}]}}, "required": ["v"]},
    "array_of_enums": {"type": "object", "properties": {"days": {"type": "array", "items": {
        "enum": ["mon", "tue", "wed"]}, "minItems": 1, "maxItems": 3}}, "required": ["days"]},
    "all_of": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                         {"type": "object", "properties": {"b": NAME}, "required": ["b"]}]},
}


@pytest.fixture(scope="module")
def random_engine(models):
    from hermes_cli.engine.model import Engine

    engine = Engine.load(models["random"], n_threads=2)
    yield engine
    engine.close()


def run_json(engine, mode: jsonmode.JsonMode, seed: int, **params) -> Reply:
    chat = ChatML(engine)
    messages = [Message("system", mode.system_prompt()), Message("user", "Fill it in.")]
    return run(LocalBackend(engine, chat), jsonmode.json_reply(messages, mode, SamplingParams(seed=seed, **params)))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_output_parses_and_validates(random_engine, name: str) -> None:
    schema = SCHEMAS[name]
    check_schema(schema, name)
    for seed in range(3):
        answer = run_json(random_engine, jsonmode.JsonMode(schema, name), seed, temperature=1.0)
        assert validation_errors(answer.value, schema) == []


def _outside_strings(text: str) -> str:
    """The JSON text with every string's content removed (its quotes kept)."""
    out, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                out.append(ch)
        else:
            out.append(ch)
            in_string = ch == '"'
    return "".join(out)


@pytest.mark.parametrize("name", ["flat", "nested", "array_bounds", "tuple", "all_of"])
def test_answers_are_written_with_json_dumps_separators_and_no_other_whitespace(random_engine, name) -> None:
    """Random weights would fill every gap the grammar leaves with blanks and newlines:
    the grammar leaves none, so each separator is forced (and fast-forwarded)."""
    for seed in range(3):
        answer = run_json(random_engine, jsonmode.JsonMode(SCHEMAS[name], name), seed, temperature=1.0)
        structure = _outside_strings(answer.text)
        assert structure.replace(", ", ",").replace(": ", ":").strip() == "".join(structure.split())
        assert structure.count(",") == structure.count(", ") and structure.count(":") == structure.count(": ")


def test_any_object_mode(random_engine) -> None:
    for seed in range(5):
        answer = run_json(random_engine, jsonmode.JsonMode(), seed)
        assert isinstance(answer.value, dict)


def test_strings_are_valid_utf8_without_raw_control_characters(random_engine) -> None:
    """A byte-level vocabulary offers lone bytes and control characters; the grammar
    lets neither into a JSON string (no U+FFFD, no raw 0x00-0x1F), on any seed."""
    mode = jsonmode.JsonMode({"type": "object", "properties": {"s": {"type": "string"}},
                              "required": ["s"]}, "strings")
    chat = ChatML(random_engine)
    messages = [Message("system", mode.system_prompt()), Message("user", "x")]
    whole = 0
    for seed in range(10):
        result = random_engine.generate(chat.render(messages), SamplingParams(seed=seed, temperature=1.5,
                                                                              max_tokens=400),
                                        grammar=mode.grammar()).consume()
        after_key = result.text.split('"s"', 1)[1]
        literal = after_key[after_key.index('"'):]  # the string value as written (JSON's blanks are outside it)
        assert not any(ord(c) < 0x20 for c in literal)
        if result.finish_reason != "stop":  # a random string may run past the limit: cut, checked so far
            assert "\ufffd" not in literal[:-1]  # (the cut may split the last character)
            continue
        whole += 1
        value = json.loads(result.text)  # "Invalid control character" would raise here
        raw = b"".join(random_engine.vocab.piece(t) for t in result.token_ids)
        raw.decode("utf-8")  # strict: every byte the model wrote is valid UTF-8
        assert "\ufffd" not in value["s"]
    assert whole >= 1  # the property holds for every answer; at least one must be whole to test it


def test_numeric_bounds_and_multiple_of_are_enforced_while_sampling(random_engine) -> None:
    """minimum/maximum/multipleOf are in the grammar: every answer validates on its first
    attempt. (A random integer breaks multipleOf 7 six times in seven.)"""
    schema = {"type": "object", "properties": {
        "n": {"type": "integer", "multipleOf": 7, "minimum": 14, "maximum": 700},
        "x": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
        "required": ["n", "x"], "additionalProperties": False}
    assert jsonmode.JsonMode(schema).unenforced() == []
    for seed in range(12):
        answer = run_json(random_engine, jsonmode.JsonMode(schema, "bounds"), seed, temperature=1.0)
        assert len(answer.results) == 1
        assert answer.value["n"] % 7 == 0 and 14 <= answer.value["n"] <= 700
        assert 0 < answer.value["x"] <= 1


def test_calendar_dates_are_always_real_dates(random_engine) -> None:
    """date, date-time and time answers are valid on the first attempt: no April 31st,
    February 29th only in leap years, hours below 24."""
    import datetime

    schema = {"type": "object", "properties": {
        "d": {"type": "string", "format": "date"}, "t": {"type": "string", "format": "date-time"},
        "h": {"type": "string", "format": "time"}}, "required": ["d", "t", "h"]}
    for seed in range(40):
        answer = run_json(random_engine, jsonmode.JsonMode(schema, "dates"), seed, temperature=1.5)
        assert len(answer.results) == 1, answer.results[0].text
        datetime.date.fromisoformat(answer.value["d"])
        datetime.datetime.fromisoformat(answer.value["t"].replace("Z", "+00:00"))
        assert validation_errors(answer.value, schema) == []


def test_checked_only_keywords_are_validated_and_retried(random_engine) -> None:
    """uniqueItems is not in the grammar: every answer returned still validates, some
    needed a retry, and a run that never validates is an error, not output. Three picks
    from {1, 2, 3} are all different only 2 times in 9, whatever the weights, so both
    outcomes show up."""
    schema = {"type": "object", "properties": {"v": {"type": "array", "items": {"enum": [1, 2, 3]},
                                                     "minItems": 3, "maxItems": 3, "uniqueItems": True}},
              "required": ["v"], "additionalProperties": False}
    assert jsonmode.JsonMode(schema).unenforced() != []
    attempts, failures = [], 0
    for seed in range(30):
        try:
            answer = run_json(random_engine, jsonmode.JsonMode(schema, "unique"), seed,
                              temperature=1.0)
        except OutputContractError as e:
            assert "after 3 attempts" in str(e) and "non-unique" in str(e)
            failures += 1
            continue
        assert sorted(answer.value["v"]) == [1, 2, 3]
        attempts.append(len(answer.results))
    assert attempts, "no seed produced a valid answer"
    assert max(attempts) > 1 or failures, "uniqueness was never violated: the test proves nothing"


def test_a_cut_reply_is_incomplete_not_valid(random_engine) -> None:
    with pytest.raises(OutputContractError, match="cut after 3 tokens"):
        run_json(random_engine, jsonmode.JsonMode(SCHEMAS["flat"], "flat"), 0, max_tokens=3)


def test_the_exact_system_prompt() -> None:
    mode = jsonmode.JsonMode({"type": "object"}, "x")
    assert mode.system_prompt() == (
        "You are a helpful assistant that answers in JSON. Here's the json schema you must "
        'adhere to:\n<schema>\n{"type": "object"}\n</schema>'
    )
    assert mode.system_prompt("Be terse.").endswith('</schema>\n\nBe terse.')


@pytest.mark.parametrize("spec, message", [
    ('{"type": ', "not valid JSON"),
    ('{"type": "strin"}', "not a valid JSON Schema"),
    ('{"properties": {"a": {"$ref": "https://example.com/a.json"}}}', "remote $ref"),
    ("[1, 2]", "no such file"),
    ("nosuchmodule_xyz:Model", "cannot import"),
    ("json:nope", "has no nope"),
    ("json:dumps", "not a pydantic model"),
    ("missing.json", "no such file"),
])
def test_bad_schemas_are_usage_errors(spec: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=message.replace("$", r"\$")):
        jsonmode.load_schema(spec, cwd=tmp_path)


def test_schema_file(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCHEMAS["enum"]))
    assert jsonmode.load_schema("s.json", cwd=tmp_path).schema == SCHEMAS["enum"]


PYDANTIC_MODULE = '''
from typing import Literal
from pydantic import BaseModel, Field

class Line(BaseModel):
    sku: str = Field(max_length=8)
    qty: int

class Invoice(BaseModel):
    number: str = Field(max_length=10)
    currency: Literal["EUR", "USD"]
    lines: list[Line] = Field(max_length=3)
'''


def test_cli_schema_from_a_pydantic_model(hermes_exe, models, tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(PYDANTIC_MODULE)
    proc = subprocess.run([*hermes_exe, "ask", "Make an invoice", "--model", str(models["random"]),
                           "--schema", "mypkg.models:Invoice", "--seed", "5"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # one line when piped
    value = json.loads(proc.stdout)
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        from mypkg.models import Invoice
        Invoice.model_validate(value)
    finally:
        sys.path.remove(str(tmp_path))


def test_cli_schema_errors_come_before_the_model_loads(hermes_exe, tmp_path: Path) -> None:
    proc = subprocess.run([*hermes_exe, "ask", "x", "--model", str(tmp_path / "absent.gguf"),
                           "--schema", '{"type": "object", "required": "a"}'],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: --schema (inline): not a valid JSON Schema")
    assert "Traceback" not in proc.stderr


def test_cli_truncated_json_exits_6_with_nothing_on_stdout(hermes_exe, models) -> None:
    # a required property: no valid answer fits in 4 byte-level tokens
    proc = subprocess.run([*hermes_exe, "ask", "x", "--model", str(models["random"]), "--schema",
                           '{"type": "object", "properties": {"name": {"type": "string"}}, '
                           '"required": ["name"]}', "--max-tokens", "4"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 6
    assert proc.stdout == ""
    assert "incomplete" in proc.stderr


def test_cli_show_prompt_has_the_schema_then_the_user_system_prompt(hermes_exe, models) -> None:
    proc = subprocess.run([*hermes_exe, "ask", "x", "--model", str(models["hi"]), "--schema",
                           '{"type": "object"}', "-s", "Be terse.", "--show-prompt"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.stdout.startswith(
        "<|begin_of_text|><|im_start|>system\nYou are a helpful assistant that answers in JSON. "
        "Here's the json schema you must adhere to:\n<schema>\n{\"type\": \"object\"}\n"
        "</schema>\n\nBe terse.<|im_end|>\n")


def test_the_chosen_token_check_and_the_full_mask_path_both_run(random_engine, load) -> None:
    """Random weights propose tokens the grammar mostly rejects: the full-mask path runs
    often. "endless" proposes "abab…", which a string of "ab"s accepts: after the few
    structural tokens, the chosen-token check alone carries the reply."""
    mode = jsonmode.JsonMode({"type": "object", "properties": {"s": {"type": "string", "pattern": "^(ab)+$"}},
                              "required": ["s"]}, "ab")
    messages = [Message("system", mode.system_prompt()), Message("user", "x")]
    result = random_engine.generate(ChatML(random_engine).render(messages), SamplingParams(seed=3, max_tokens=40),
                                    grammar=mode.grammar()).consume()
    assert result.resampled > 0  # the full-mask path ran (random weights: how often depends on the CPU's rounding)
    endless = load("endless")
    result = endless.generate(ChatML(endless).render(messages), SamplingParams(seed=3, max_tokens=40),
                              grammar=mode.grammar()).consume()
    # it writes "ab" until the limit nears, then the grammar closes the string (issue 22)
    assert result.completion_tokens <= 40 and result.closed > 0 and "abababab" in result.text
    first_a = result.token_ids.index(ord("a"))
    assert result.completion_tokens - result.closed - first_a >= 16
    # the structure (`{"s": "`) is forced and each "b" after an "a" too; every "a" the
    # model chose passed the check on its own, without the full mask
    assert result.forced >= first_a and result.resampled <= 1


def test_a_schema_is_compiled_once_however_often_it_is_checked_and_used(monkeypatch) -> None:
    """Issue 20: the schema went through llguidance four times before the model loaded
    (check, grammar, unenforced, the logic's grammar)."""
    import hermes_cli.engine.grammars as constraint

    calls: list[str] = []
    real = constraint.check_grammar

    def counting(kind: str, source: str) -> list[str]:
        calls.append(source)
        return real(kind, source)

    monkeypatch.setattr(constraint, "check_grammar", counting)
    mode = jsonmode.JsonMode({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    mode.check()
    first = mode.grammar()
    assert mode.unenforced() == [] and mode.grammar() is first
    assert len(calls) == 1
    mode.schema = {"type": "object", "properties": {"b": {"type": "string"}}}  # /schema changed it
    assert '"b"' in mode.grammar().source and len(calls) == 2


LONG_STRING = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def test_near_the_limit_the_grammar_closes_the_answer_and_it_validates(random_engine) -> None:
    """Issue 22: an answer cut by --max-tokens inside a long string was exit 6. Near the
    limit the grammar's ending is taken: the string closed, the object ended."""
    for seed in range(6):
        answer = run_json(random_engine, jsonmode.JsonMode(LONG_STRING, "long"), seed, temperature=1.0,
                          max_tokens=40)
        last = answer.results[-1]
        assert validation_errors(answer.value, LONG_STRING) == []
        assert last.finish_reason == "stop" and last.completion_tokens <= 40
        assert last.closed > 0 and last.closed_by == "length"  # the random model never closes it itself


def test_every_schema_either_fits_whole_or_is_cut_as_before(random_engine) -> None:
    """With a tight budget each answer is whole and valid: written, or closed by the
    grammar; where no ending fits it would be cut as before (exit 6), never invalid."""
    closed = cut = 0
    for name, schema in sorted(SCHEMAS.items()):
        for seed in range(2):
            try:
                answer = run_json(random_engine, jsonmode.JsonMode(schema, name), seed, temperature=1.0,
                                  max_tokens=56)
            except OutputContractError as e:
                assert "cut after" in str(e)
                cut += 1
                continue
            assert validation_errors(answer.value, schema) == [], name
            closed += answer.results[-1].closed > 0
    # every schema here has a valid answer of at most 49 tokens (nested's shortest,
    # `{"person": {"name": "", "address": {"city": ""}}}`, a byte a token), so none is cut;
    # and at least one answer reached the budget, or the closing was not tested at all
    assert cut == 0 and closed >= 1


def test_cli_a_closed_answer_is_printed_with_a_note(hermes_exe, models) -> None:
    proc = subprocess.run([*hermes_exe, "ask", "x", "--model", str(models["random"]), "--schema",
                           json.dumps(LONG_STRING), "--max-tokens", "30", "--seed", "3", "--stats"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert validation_errors(json.loads(proc.stdout), LONG_STRING) == []
    assert "the grammar closed what was open in its last" in proc.stderr
    assert "closing what was open, to fit --max-tokens" in proc.stderr  # --stats says it too


@pytest.mark.parametrize("fmt, start", [("email", "abc"), ("email", "abc@def"), ("uri", "abc"),
                                        ("date-time", "2024-01-0")])
def test_the_ending_of_a_string_in_a_format_gets_out_of_it(random_engine, fmt: str, start: str) -> None:
    """A greedy ending wrote `0` after `0` in an email's local part (SmolLM2's runaway
    `contact` was cut on 7 of 10 seeds): going round, it looks for the format's
    delimiters (`@a` before the quote) instead."""
    from jsonschema import Draft202012Validator

    schema = {"type": "object", "properties": {"v": {"type": "string", "format": fmt}}, "required": ["v"]}
    matcher = random_engine.grammars.matcher(jsonmode.JsonMode(schema).grammar())
    text = '{"v": "' + start
    for token in random_engine.tokenize(text):
        assert matcher.check(token)
        matcher.accept(token)
    ending = matcher.closing(20)
    assert ending is not None
    answer = json.loads(text + b"".join(random_engine.vocab.piece(t) for t in ending).decode())
    checker = Draft202012Validator.FORMAT_CHECKER
    assert list(Draft202012Validator(schema, format_checker=checker).iter_errors(answer)) == []


def test_an_ending_longer_than_the_closing_window_is_found_in_time(random_engine) -> None:
    """Eight required keys not yet written need an ending of about 130 tokens, longer
    than the 64-token window in which the ending is asked after every token: the probe
    every 16 tokens sees it coming, and the answers close instead of being cut."""
    props = {f"field_{i:02d}": {"type": "string"} for i in range(8)}
    schema = {"type": "object", "properties": props, "required": list(props)}
    for seed in range(3):
        answer = run_json(random_engine, jsonmode.JsonMode(schema), seed, temperature=1.0, max_tokens=200)
        assert validation_errors(answer.value, schema) == []
        assert answer.results[-1].closed > CLOSING_WINDOW


def test_a_token_that_would_leave_no_room_to_close_is_not_taken(random_engine) -> None:
    """An ending can grow by far more than the closing margin in one sampled token: a
    `,` after the two required array items commits to a third of four required keys
    (about 80 tokens on this byte-level vocabulary). Near the limit such a token is
    refused and the ending that fits before it is written instead; before, 4 of these
    16 answers were cut (exit 6), as JSONSchemaBench's o13663 was on SmolLM2."""
    item = {"type": "object", "properties": {k: {"type": "string", "maxLength": 3} for k in
                                             ("alpha_key", "bravo_key", "charlie_key", "delta_key")},
            "required": ["alpha_key", "bravo_key", "charlie_key", "delta_key"], "additionalProperties": False}
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": item, "minItems": 2}},
              "required": ["items"]}
    closed = 0
    for seed in range(4):
        for max_tokens in (200, 215, 230, 245):
            answer = run_json(random_engine, jsonmode.JsonMode(schema), seed, temperature=1.0,
                              max_tokens=max_tokens)  # a cut answer would raise OutputContractError
            assert validation_errors(answer.value, schema) == []
            assert answer.results[-1].completion_tokens <= max_tokens
            closed += answer.results[-1].closed > 0
    assert closed >= 1
