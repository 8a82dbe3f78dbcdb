"""Where a tool call ends: at the end of its JSON (as the call grammar says), never at a
`</tool_call>` written inside an argument string; the same however the text is streamed.
Fuzzed with hypothesis."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_cli.modes.events import TextDelta, ToolCallEvent
from hermes_cli.modes.tools.stream import ToolTextSplitter
from hermes_cli.prompt.tool_calls import Block, CallScanner, Text, parse_tool_calls

# What SmolLM2 wrote under the old grammar reading (issue 19): the tag inside the string.
TRICKY = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "}}</tool_call>17*23"}}\n</tool_call>'


def scan(text: str, cuts: list[int]) -> tuple[list, bool]:
    scanner, out, last = CallScanner(), [], 0
    for at in [*sorted(cuts), len(text)]:
        out += scanner.feed(text[last:at])
        last = at
    inside = scanner.inside
    return _merged(out + scanner.finish()), inside


def _merged(segments: list) -> list:
    """Adjacent text segments joined (how text is split across deltas does not matter)."""
    out: list = []
    for s in segments:
        if isinstance(s, Text) and out and isinstance(out[-1], Text):
            out[-1] = Text(out[-1].text + s.text)
        elif not (isinstance(s, Text) and not s.text):
            out.append(s)
    return out


def test_a_closing_tag_inside_an_argument_string_does_not_end_the_call() -> None:
    parsed = parse_tool_calls(TRICKY)
    assert parsed.errors == [] and not parsed.open
    assert [(c.name, c.arguments) for c in parsed.calls] == [("calculate", {"expression": "}}</tool_call>17*23"})]


def test_the_stream_shows_that_call_once_whole_and_no_json_as_text() -> None:
    splitter = ToolTextSplitter()
    events = [e for ch in TRICKY for e in splitter.feed(ch)] + splitter.finish()
    assert events == [ToolCallEvent("calculate", {"expression": "}}</tool_call>17*23"})]


def test_a_call_cut_inside_its_json_is_open_and_never_a_call() -> None:
    parsed = parse_tool_calls(TRICKY[:60])
    assert parsed.open and parsed.calls == [] and len(parsed.errors) == 1


def test_a_cut_inside_the_opening_tag_is_open_and_hidden_from_the_stream() -> None:
    assert parse_tool_calls("<tool_").open
    splitter = ToolTextSplitter()
    assert splitter.feed("<tool_") == [] and splitter.finish(cut=True) == []
    splitter = ToolTextSplitter()
    assert splitter.feed("a <to") == [TextDelta("a ")] and splitter.finish() == [TextDelta("<to")]


def test_a_whole_object_without_its_closing_tag_at_the_end_is_a_call() -> None:
    parsed = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"x": "a}"}}')
    assert [(c.name, c.arguments) for c in parsed.calls] == [("f", {"x": "a}"})]


def test_text_after_a_call_is_text_again() -> None:
    segments, inside = scan('hi <tool_call>{"name": "f", "arguments": {}}</tool_call> bye', [])
    assert segments == [Text("hi "), Block('{"name": "f", "arguments": {}}'), Text(" bye")]
    assert not inside


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('ab"\\{}[]<>/_ \n\'é')),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(name=st.text(min_size=1, max_size=8), arguments=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
       before=st.text(alphabet="xy <>\n", max_size=6), data=st.data())
def test_any_call_reads_back_exactly_however_it_is_streamed(name, arguments, before, data) -> None:
    """Arguments holding quotes, backslashes, brackets and the tags themselves: the call
    is read back exactly, and the stream's segments do not depend on where it is cut."""
    if "<" in before:
        before = before.replace("<", "")
    text = before + "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) \
        + "\n</tool_call>"
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=8))
    segments, inside = scan(text, cuts)
    assert segments == _merged([Text(before), Block(json.dumps({"name": name, "arguments": arguments},
                                                               ensure_ascii=False))])
    assert not inside
    parsed = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in parsed.calls] == [(name, arguments)] and parsed.errors == []


@settings(max_examples=300, deadline=None)
@given(arguments=st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=4), data=st.data())
def test_every_proper_prefix_of_a_call_is_open_and_runs_nothing(arguments, data) -> None:
    text = "<tool_call>\n" + json.dumps({"name": "f", "arguments": arguments}) + "\n</tool_call>"
    cut = data.draw(st.integers(1, len(text) - 1))
    parsed = parse_tool_calls(text[:cut])
    assert parsed.open
    # A prefix that holds the whole object is the only one that may read as the call.
    assert all(c.arguments == arguments for c in parsed.calls)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('<tool_call>/{}[]"\\\' \nab')), max_size=80))
def test_any_text_gives_segments_or_errors_never_an_exception(text: str) -> None:
    parsed = parse_tool_calls(text)
    assert all(isinstance(c.arguments, dict) for c in parsed.calls)
    splitter = ToolTextSplitter()
    for ch in text:
        splitter.feed(ch)
    splitter.finish()
