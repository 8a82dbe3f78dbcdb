"""Issue 31, item 4: a call the model closed inside its argument string (`"expression":
"17*23}}</tool_call>Here, we…"`) is read as it evidently meant it, the quote it skipped
put back before the brackets it wrote to close the call, and run so; without such an
evident end it stays malformed and is asked for again (tests/test_tools.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_cli.prompt.meant_calls import meant_arguments
from hermes_cli.prompt.tool_calls import parse_tool_calls
from tests import tinymodels as tm

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<>"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(before=st.dictionaries(st.text(min_size=1, max_size=5), _TEXT, max_size=3),
       key=st.text(min_size=1, max_size=5), value=_TEXT.filter(lambda v: v.rstrip("}] \t\r\n") == v and v),
       closers=st.text(alphabet="}] ", min_size=1, max_size=4).filter(lambda c: c.strip()),
       tag=st.sampled_from(["</tool_call>", "<tool_call>"]), rest=st.text(max_size=30),
       after=st.dictionaries(st.text(min_size=1, max_size=5), _TEXT, max_size=2))
def test_the_value_before_the_closing_brackets_is_what_the_model_meant(before, key, value, closers, tag, rest,
                                                                       after) -> None:
    args = {**{k: v for k, v in before.items() if k != key}, key: value + closers + tag + rest}
    args |= {k: v for k, v in after.items() if k not in args}
    meant = meant_arguments(args)
    keys = list(args)
    expected = {k: args[k] for k in keys[:keys.index(key)]} | {key: value}  # keys written later are dropped
    assert meant == expected


@pytest.mark.parametrize("text", ["", "}}", "  ]} "])
def test_no_value_before_the_brackets_is_no_evident_end(text: str) -> None:
    assert meant_arguments({"x": text + "</tool_call>more"}) is None


def test_a_string_without_a_tag_is_not_touched() -> None:
    assert meant_arguments({"x": "a}}b", "y": [1, {"z": "}"}]}) is None
    parsed = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"x": "a}}b"}}\n</tool_call>')
    assert [(c.arguments, c.meant) for c in parsed.calls] == [({"x": "a}}b"}, False)]


@pytest.fixture(scope="module")
def closer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inside a string it writes `x}<tool_call>OK…`: a value, a bracket, the call's tag
    (one added token here), then what it takes for its answer."""
    vocab = tm.vocabulary()
    b, tag = tm.byte_token, vocab.index("<tool_call>")
    table = {b(ord('"')): b(ord("x")), b(ord("x")): b(ord("}")), b(ord("}")): tag, tag: b(ord("O")),
             b(ord("O")): b(ord("K"))}
    return tm.write_model(tmp_path_factory.mktemp("closer") / "closer.gguf", kind="bigram", bigram=table)


def forced_echo(hermes_exe: list[str], model: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`ask` with the call to `echo` forced (200 tokens, one round); the file `echo` writes
    each value it is run with to."""
    log = tmp_path / "ran.txt"
    (tmp_path / "t.py").write_text("def echo(s: str) -> str:\n    \"\"\"Echo.\"\"\"\n"
                                   f"    open({str(log)!r}, 'a').write(repr(s) + '\\n')\n    return s\n")
    proc = subprocess.run([*hermes_exe, "ask", "x", "-m", str(model), "--tools", str(tmp_path / "t.py"),
                           "--tool-choice", "echo", "--yes", "--stats", "--max-tokens", "200", "--max-rounds", "1"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return proc, log


def test_through_the_engine_the_forced_call_runs_with_the_value_the_model_meant(
        hermes_exe, closer: Path, tmp_path: Path) -> None:
    proc, log = forced_echo(hermes_exe, closer, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == "'x'\n"  # not "x}<tool_call>OK…": the string ends where the model closed it
    assert 'the call to echo was closed inside its string; read up to where the model ended it: {"s": "x"}' \
        in proc.stderr


@settings(max_examples=300, deadline=None)
@given(before=st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=4), st.integers() | _TEXT, max_size=3),
       value=_TEXT.filter(lambda v: v.rstrip("}] \t\r\n") == v and v),
       closers=st.text(alphabet="}] ", min_size=1, max_size=4).filter(lambda c: c.strip()),
       rest=st.text(max_size=30))
def test_an_unfinished_call_ended_at_its_tag_inside_a_string_is_read_as_meant(before, value, closers, rest) -> None:
    import json

    from hermes_cli.prompt.meant_calls import meant_body

    args = {k: v for k, v in before.items() if k != "z"}
    head = json.dumps({"name": "f", "arguments": {**args, "z": ""}})[:-3]  # up to the opening quote of "z"
    body = head + json.dumps(value)[1:-1] + closers + "</tool_call>" + rest
    assert json.loads(meant_body(body)) == {"name": "f", "arguments": {**args, "z": value}}


def test_a_tag_outside_any_string_is_not_read_as_a_call() -> None:
    from hermes_cli.prompt.meant_calls import meant_body

    assert meant_body('{"name": "f", "arguments": {"a": 1}} </tool_call>') is None  # not inside a string
    assert meant_body('{"name": "f", "arguments": {"a": "x </tool_call>') is None  # no closing bracket before it


@pytest.fixture(scope="module")
def ender(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inside a string it writes `x}</tool_call>` (the closing tag one added token here)
    and then goes on writing `OK` forever."""
    tokens = ("<tool_call>", "</tool_call>")
    vocab = tm.vocabulary(tokens)
    b, close = tm.byte_token, vocab.index("</tool_call>")
    table = {b(ord('"')): b(ord("x")), b(ord("x")): b(ord("}")), b(ord("}")): close, close: b(ord("O")),
             b(ord("O")): b(ord("K")), b(ord("K")): b(ord("O"))}
    return tm.write_model(tmp_path_factory.mktemp("ender") / "ender.gguf", kind="bigram", bigram=table,
                          user_tokens=tokens)


def test_the_generation_ends_where_the_model_closed_its_call_inside_the_string(
        hermes_exe, ender: Path, tmp_path: Path) -> None:
    """Issue 31 item 4: the decoding stops at the model's evident end of its call (not at
    the limit, as it did: the rest of the string was generated, then dropped), and the call
    runs with the value it meant."""
    proc, log = forced_echo(hermes_exe, ender, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == "'x'\n"
    first = next(line for line in proc.stderr.splitlines() if line.startswith("round 1:"))
    written = int(first.split(" · reply ")[1].split(" tokens")[0])
    forced = int(first.split(" tokens (")[2].split(" forced")[0])
    assert written <= forced + 4, first  # the first token, x, }, the tag: not the 200-token limit
