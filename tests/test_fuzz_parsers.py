"""Every parser of outside input, fuzzed with hypothesis: session files, batch lines,
config files, schemas and the GGUF header reader. Each example ends in a result or in a
one-line HermesError with a documented exit code, never in another exception (which the
CLI would show as a bug, exit 1) or a crash. The tool-call text parser has its own file
(test_calltext.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes_cli.errors import HermesError

DOCUMENTED = {2, 3, 4, 5, 6}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Strings as hostile as JSON text can carry: lone surrogates, controls, markers, paths.
hostile_text = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2),
    st.sampled_from(["<|im_start|>system", "../../etc/passwd", "\x1b]0;x\x07", "user", "assistant", "tool",
                     "system", "object", "string", "integer"]),
)
numbers = st.one_of(st.integers(min_value=-(10**30), max_value=10**400), st.floats(allow_nan=True))
keys = st.sampled_from(["messages", "role", "content", "token_ids", "settings", "params", "json_schema", "id",
                        "created", "model", "branches", "current", "prompt", "schema", "system", "files", "type",
                        "properties", "required", "items", "temperature", "top_k", "seed", "max_tokens",
                        "fast_forward", "json", "tools", "$ref", "$defs"])
json_values = st.recursive(st.none() | st.booleans() | numbers | hostile_text,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys | hostile_text, inner,
                                                                                       max_size=5),
                           max_leaves=20)


def _one_line(e: HermesError) -> None:
    assert e.exit_code in DOCUMENTED, (type(e), e.exit_code, str(e))
    assert "\n" not in str(e)


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=True)  # a lone surrogate becomes "\ud83d", as a file would hold it


@FUZZ
@given(st.dictionaries(keys, json_values, max_size=8))
def test_any_session_file_loads_or_is_one_line(tmp_path: Path, data: dict) -> None:
    from hermes_cli.core.conversation import Conversation

    path = tmp_path / "s.json"
    path.write_text(_dump(data), encoding="utf-8")
    try:
        conv = Conversation.load(path)
    except HermesError as e:
        _one_line(e)
        return
    conv.save(tmp_path / "again.json")  # what loaded can be saved and loaded again
    Conversation.load(tmp_path / "again.json")


@FUZZ
@given(st.lists(st.one_of(json_values.map(_dump), st.text(max_size=30)), min_size=1, max_size=5))
def test_any_batch_input_gives_items_or_one_line(tmp_path: Path, lines: list[str]) -> None:
    from hermes_cli.core.batch import read_items

    text = "".join(line.replace("\n", " ").replace("\r", " ") + "\n" for line in lines)
    try:
        items = read_items(io.StringIO(text), files_root=tmp_path)
    except HermesError as e:
        _one_line(e)
        return
    for item in items:
        if item.error is not None:
            assert "\n" not in item.error
        else:  # a line that is accepted holds only Unicode text
            for m in item.messages:
                m.content.encode("utf-8")


toml_values = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=False),
                        st.booleans(), st.text(max_size=8).map(json.dumps))
config_keys = st.sampled_from(["model", "ctx", "gpu_layers", "threads", "gpu_hint", "temperature", "top_k",
                               "seed", "max_tokens", "fast_forward", "system", "schema", "tools", "nope"])
tables = st.sampled_from(["", "[sampling]\n", "[roles.r]\n", "[roles.r.sampling]\n", "[aliases]\n",
                          "[mcp.servers.s]\n", "[roles]\n"])


@FUZZ
@given(st.lists(st.tuples(tables, config_keys, toml_values), max_size=6), st.binary(max_size=20))
def test_any_config_file_loads_or_is_one_line(tmp_path: Path, entries: list, junk: bytes) -> None:
    from hermes_cli.core.config import load_config

    text = "".join(f"{table}{key} = {value}\n" for table, key, value in entries)
    for body in (text.encode(), text.encode() + junk):
        path = tmp_path / "config.toml"
        path.write_bytes(body)
        try:
            load_config(path)
        except HermesError as e:
            _one_line(e)


@FUZZ
@given(json_values)
def test_any_inline_schema_loads_or_is_one_line(value: object) -> None:
    from hermes_cli.modes.json_mode import load_schema

    text = _dump(value)
    try:
        mode = load_schema(text if text.startswith("{") else "{" + text)
        mode.check()
    except HermesError as e:
        _one_line(e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_mutated_gguf_header_reads_or_is_exit_3(models: dict, tmp_path: Path, data: st.DataObject) -> None:
    from hermes_cli.engine import gguf

    original = models["hi"].read_bytes()[:20_000]
    cut = data.draw(st.integers(0, len(original)))
    mutated = bytearray(original[:cut])
    for _ in range(data.draw(st.integers(0, 4))):
        if len(mutated) > 4:
            at = data.draw(st.integers(4, len(mutated) - 1))
            mutated[at:at + 8] = data.draw(st.binary(min_size=8, max_size=8))[: len(mutated) - at]
    path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.gguf"  # a new name: the header cache keys on it
    path.write_bytes(bytes(mutated))
    try:
        meta = gguf.read_metadata(path)
        gguf.check_shape(meta, path)
    except HermesError as e:
        assert e.exit_code == 3 and str(path) in str(e)


SECRET = "sk-fuzz-secret-5d1e"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="sk-fuzecrt5d1 x", max_size=60), st.lists(st.integers(0, 80), max_size=8))
def test_streamed_text_never_shows_a_secret_however_it_is_split(text: str, cuts: list[int]) -> None:
    from hermes_cli.errors import StreamRedactor, keep_secret, redact

    keep_secret(SECRET)
    whole = text + SECRET + text[::-1]
    bounds = sorted({0, len(whole), *(c % (len(whole) + 1) for c in cuts)})
    redactor = StreamRedactor()
    shown = [redactor.feed(whole[a:b]) for a, b in zip(bounds, bounds[1:])] + [redactor.finish()]
    assert "".join(shown) == redact(whole) and SECRET not in "".join(shown)
