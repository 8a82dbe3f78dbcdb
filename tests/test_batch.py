"""`hermes batch` through the real engine and the installed command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hermes_cli.core import batch
from hermes_cli.modes.json_schema import validation_errors
from hermes_cli.prompt.tool_calls import parse_tool_calls
from tests import children


def hermes(exe, *args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*exe, *args], input=stdin, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def records(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n") or not text
    return [json.loads(line) for line in text.splitlines()]


def test_text_input_ids_are_line_numbers(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("first\nsecond\n\nfourth\n")
    out = tmp_path / "out.jsonl"
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.txt"), "-o", str(out), "-m", str(models["hi"]))
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    assert [r["id"] for r in recs] == [1, 2, 4]
    assert {r["output"] for r in recs} == {"Hi!"} and {r["finish_reason"] for r in recs} == {"stop"}
    for key in ("prompt_tokens", "completion_tokens", "seconds", "tokens_per_second"):
        assert key in recs[0]
    assert "done 3, failed 0, skipped 0" in proc.stderr


def test_jsonl_overrides_messages_system_and_schema(hermes_exe, models, tmp_path: Path) -> None:
    lines = [
        {"id": "a", "prompt": "go", "max_tokens": 3},
        {"id": "b", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "go"}],
         "max_tokens": 5},
        {"id": "c", "prompt": "go", "system": "other", "max_tokens": 2, "temperature": 0},
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out.jsonl"
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out),
                  "-m", str(models["endless"]))
    assert proc.returncode == 0, proc.stderr
    got = {r["id"]: r for r in records(out)}
    assert got["a"]["output"] == "aba" and got["a"]["finish_reason"] == "length"
    assert got["b"]["output"] == "ababa" and got["c"]["output"] == "ab"


def test_per_line_schema_and_global_json(hermes_exe, models, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    (tmp_path / "in.jsonl").write_text(
        json.dumps({"id": 1, "prompt": "x", "schema": schema}) + "\n"
        + json.dumps({"id": 2, "prompt": "y"}) + "\n")
    out = tmp_path / "out.jsonl"
    # Greedy: a random model's "any object" can run to the context on an unlucky seed.
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "--json",
                  "-m", str(models["random"]), "--temperature", "0")
    assert proc.returncode == 0, proc.stderr
    got = {r["id"]: r["output"] for r in records(out)}
    assert isinstance(got[1]["ok"], bool) and set(got[1]) == {"ok"}
    assert isinstance(got[2], dict)


def test_bad_lines_are_reported_and_the_rest_goes_on(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(
        '{"id": 1, "prompt": "ok"}\n{"id": 2, "prompt": \n{"id": 3}\n'
        '{"id": 4, "prompt": "ok", "temperature": "hot"}\n{"id": 5, "prompt": "ok"}\n')
    out = tmp_path / "out.jsonl"
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m", str(models["hi"]))
    assert proc.returncode == 1
    assert "Error: 3 lines failed; the error records in the output say why" in proc.stderr  # the outcome, once
    got = {r["id"]: r for r in records(out)}
    assert got[1]["output"] == got[5]["output"] == "Hi!"
    assert "line 2 is not valid JSON" in got[2]["error"] and got[2]["line"] == 2
    assert 'needs "prompt" or "messages"' in got[3]["error"]
    assert "temperature must be a number" in got[4]["error"]
    assert "done 2, failed 3 (lines 2, 3, 4)" in proc.stderr


def test_duplicate_ids_fail_before_the_model_loads(hermes_exe, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}\n')
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-m", str(tmp_path / "none.gguf"))
    assert proc.returncode == 2
    assert "duplicate id 'x' on lines 1 and 2" in proc.stderr and "Traceback" not in proc.stderr


def test_stdin_and_stdout(hermes_exe, models) -> None:
    proc = hermes(hermes_exe, "batch", "-", "-m", str(models["hi"]), "-q", stdin="one\ntwo\n")
    assert proc.returncode == 0 and proc.stderr == ""
    assert [json.loads(x)["output"] for x in proc.stdout.splitlines()] == ["Hi!", "Hi!"]


def test_a_shared_system_prompt_is_evaluated_once(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("\n".join(f"question {i}" for i in range(6)) + "\n")
    out = tmp_path / "out.jsonl"
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.txt"), "-o", str(out), "-m",
                  str(models["hi"]), "-s", "You are a careful assistant. " * 20)
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    assert recs[0]["prompt_evaluated"] == recs[0]["prompt_tokens"] > 400
    for r in recs[1:]:  # only the line's own tokens: its question and the turn markers
        assert r["prompt_evaluated"] <= 20


def test_seed_makes_a_run_reproducible(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a\nb\nc\n")
    args = ["batch", str(tmp_path / "in.txt"), "-m", str(models["random"]), "--seed", "9",
            "--max-tokens", "12", "-q"]
    first, second = hermes(hermes_exe, *args), hermes(hermes_exe, *args)

    def outputs(proc):
        return [(r["id"], r["output"]) for r in map(json.loads, proc.stdout.splitlines())]

    assert outputs(first) == outputs(second) and len(outputs(first)) == 3
    assert len({o for _, o in outputs(first)}) == 3  # SEED+i: the lines differ


def test_tools_need_yes(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    (tmp_path / "in.txt").write_text("x\n")
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.txt"), "-m", str(models["random"]),
                  "--tools", str(tmp_path / "t.py"))
    assert proc.returncode == 2 and "--yes" in proc.stderr
    # "hi" answers "Hi!" once the forced call has run: the record is that answer.
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.txt"), "-m", str(models["hi"]),
                  "--tools", str(tmp_path / "t.py"), "--yes", "--tool-choice", "add",
                  "--max-tokens", "200", "--seed", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["id"] == 1 and record["output"] == "Hi!" and record["rounds"] == 1


@pytest.mark.parametrize("cut", [0.0, 0.3, 0.5, 0.77, 0.999])
def test_resume_after_a_torn_output_gives_one_record_per_id(hermes_exe, models, tmp_path: Path,
                                                             cut: float) -> None:
    (tmp_path / "in.txt").write_text("\n".join(f"q{i}" for i in range(10)) + "\n")
    args = ["batch", str(tmp_path / "in.txt"), "-m", str(models["hi"]), "-q"]
    full = tmp_path / "full.jsonl"
    assert hermes(hermes_exe, *args, "-o", str(full)).returncode == 0
    data = full.read_bytes()
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(data[: int(len(data) * cut)])  # what a kill leaves, mid-line or not
    proc = hermes(hermes_exe, *args, "-o", str(torn))
    assert proc.returncode == 0, proc.stderr
    recs = records(torn)
    assert sorted(r["id"] for r in recs) == list(range(1, 11))


def test_sigkill_mid_run_then_resume(hermes_exe, models, tmp_path: Path) -> None:
    n = 150
    (tmp_path / "in.txt").write_text("\n".join(f"q{i}" for i in range(n)) + "\n")
    out = tmp_path / "out.jsonl"
    cmd = [*hermes_exe, "batch", str(tmp_path / "in.txt"), "-o", str(out), "-m",
           str(models["endless"]), "--max-tokens", "24", "-q"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    with children.ended(proc):  # killed however the test ends
        deadline = time.monotonic() + 120
        while (not out.exists() or out.read_bytes().count(b"\n") < 5) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)  # polling the condition, not waiting for it to happen
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = out.read_bytes().count(b"\n")
    assert 5 <= before < n, "killed too late to test anything"
    resumed = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr
    recs = records(out)
    assert sorted(r["id"] for r in recs) == list(range(1, n + 1))
    assert {r["output"] for r in recs} == {"ab" * 12}
    assert f"skipped {before}" in resumed.stderr


def test_read_items_rejects_non_object_lines() -> None:
    import io

    items = batch.read_items(io.StringIO('{"id": 1, "prompt": "a"}\n[1, 2]\n'))
    assert items[1].error == "a JSONL line must be an object"


def outputs_by_id(text: str) -> dict:
    return {r["id"]: r["output"] for r in map(json.loads, text.splitlines())}


@pytest.mark.parametrize("n", [2, 4])
def test_parallel_gives_the_same_answers_as_one_at_a_time(hermes_exe, models, tmp_path: Path, n: int) -> None:
    # Different lengths, so slots finish at different times and are refilled mid-run.
    lines = [json.dumps({"id": i, "prompt": f"question {i}", "max_tokens": 3 + (i * 5) % 17})
             for i in range(11)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    args = ["batch", str(tmp_path / "in.jsonl"), "-m", str(models["endless"]), "-q",
            "-s", "shared system prompt " * 5]
    one = hermes(hermes_exe, *args)
    many = hermes(hermes_exe, *args, "--parallel", str(n))
    assert one.returncode == many.returncode == 0, many.stderr
    assert outputs_by_id(many.stdout) == outputs_by_id(one.stdout)
    assert outputs_by_id(many.stdout)[4] == ("ab" * 20)[:3 + 20 % 17]
    recs = [json.loads(x) for x in many.stdout.splitlines()]
    assert all(r["prompt_evaluated"] < 20 for r in recs)  # the shared prefix once, not per line


def test_parallel_sampling_uses_each_lines_seed(hermes_exe, models, tmp_path: Path) -> None:
    """Random weights: equality with one-at-a-time is shown exactly on the deterministic
    model above (here batched arithmetic may round differently and flip a near-tie).
    What must hold: the same seed reproduces a --parallel run, another seed changes it."""
    (tmp_path / "in.txt").write_text("\n".join(f"question {i}" for i in range(9)) + "\n")
    args = ["batch", str(tmp_path / "in.txt"), "-m", str(models["random"]), "--max-tokens", "16",
            "-q", "--parallel", "3"]
    first = outputs_by_id(hermes(hermes_exe, *args, "--seed", "11").stdout)
    again = outputs_by_id(hermes(hermes_exe, *args, "--seed", "11").stdout)
    other = outputs_by_id(hermes(hermes_exe, *args, "--seed", "12").stdout)
    assert set(first) == set(range(1, 10))
    assert first == again
    assert sum(first[i] != other[i] for i in first) >= 8
    assert len(set(first.values())) == 9


def test_parallel_resumes_and_reports_what_does_not_fit(hermes_exe, models, tmp_path: Path) -> None:
    lines = ["short"] * 3 + ["long " * 300]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"id": 1, "output": "earlier"}) + "\n" + '{"id": 2, "outp')
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.txt"), "-o", str(out), "-m",
                  str(models["hi"]), "--parallel", "3", "--ctx", "1024")
    assert proc.returncode == 1
    got = {r["id"]: r for r in records(out)}
    assert got[1]["output"] == "earlier" and got[2]["output"] == got[3]["output"] == "Hi!"
    assert "with --parallel 3 each prompt has" in got[4]["error"]
    assert "skipped 1" in proc.stderr


def test_parallel_runs_text_schema_json_and_tool_lines_together(hermes_exe, models,
                                                              tmp_path: Path) -> None:
    """Every mode in one --parallel batch, each slot with its own grammar state: the
    "caller" model opens a tool call after every assistant header, so text lines show
    the raw tag, tool lines get a grammar-held call that runs, schema and JSON lines a
    valid object."""
    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9},
                                               "d": {"type": "string", "format": "date"}},
              "required": ["n", "d"]}
    lines = []
    for i in range(3):
        lines += [{"id": f"text{i}", "prompt": "x", "tools": False},
                  {"id": f"schema{i}", "prompt": "y", "schema": schema},
                  {"id": f"json{i}", "prompt": "z", "json": True},
                  {"id": f"tool{i}", "prompt": "w"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    proc = hermes(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-m", str(models["caller"]),
                  "--tools", str(tmp_path / "t.py"), "--yes", "--max-rounds", "1",
                  "--parallel", "3", "--ctx", "8192", "--seed", "4", "-q", "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 0, proc.stderr
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert set(records) == {line["id"] for line in lines}
    for i in range(3):
        assert records[f"text{i}"]["output"] == "<tool_call>"
        value = records[f"schema{i}"]["output"]
        assert validation_errors(value, schema) == []
        assert isinstance(records[f"json{i}"]["output"], dict)
        tool = records[f"tool{i}"]
        assert tool["rounds"] == 1 and tool["stopped"] == "round_limit"
        call = parse_tool_calls(tool["output"]).calls[0]
        assert call.name == "add" and set(call.arguments) == {"a", "b"}


def test_parallel_with_fast_forward_gives_the_records_of_one_at_a_time_at_temperature_0(
        hermes_exe, models, tmp_path: Path) -> None:
    """Issue 22: a slot with a forced span puts several tokens into the step's batch; the
    mixed text, schema, JSON and tool lines still answer as they do one at a time."""
    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9},
                                               "ok": {"type": "boolean"}}, "required": ["n", "ok"]}
    lines = []
    for i in range(3):
        lines += [{"id": f"text{i}", "prompt": f"x{i}", "tools": False},
                  {"id": f"schema{i}", "prompt": f"y{i}", "schema": schema},
                  {"id": f"json{i}", "prompt": f"z{i}", "json": True},
                  {"id": f"tool{i}", "prompt": f"w{i}"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["batch", str(tmp_path / "in.jsonl"), "-m", str(models["caller"]), "--tools", str(tmp_path / "t.py"),
            "--yes", "--max-rounds", "1", "--ctx", "8192", "--temperature", "0", "--max-tokens", "120", "-q"]
    one = hermes(hermes_exe, *args)
    many = hermes(hermes_exe, *args, "--parallel", "3")
    assert one.returncode == many.returncode, many.stderr

    def answers(text: str) -> dict:  # the output, or the error (a greedy "any object" runs to the limit)
        return {r["id"]: r.get("output", r.get("error")) for r in map(json.loads, text.splitlines())}

    assert answers(many.stdout) == answers(one.stdout)
    got = answers(one.stdout)
    assert len(got) == 12 and all('"name": "add"' in got[f"tool{i}"] for i in range(3))


def test_parallel_slots_close_answers_to_fit_the_budget_as_one_at_a_time_does(hermes_exe, models,
                                                                               tmp_path: Path) -> None:
    """Issue 22: near --max-tokens each slot's grammar closes its answer; the records
    say so, validate, and are the same with --parallel as one at a time. On "endless"
    (one-hot embeddings, a bigram table): its logits are exact in any batch shape, so the
    answers must be equal; random weights may differ in the last bits between shapes."""
    from hermes_cli.modes.json_schema import validation_errors

    schema = {"type": "object", "properties": {"text": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["text", "n"]}
    lines = [{"id": i, "prompt": f"p{i}", "schema": schema, "seed": i} for i in range(6)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["batch", str(tmp_path / "in.jsonl"), "-m", str(models["endless"]), "--max-tokens", "40",
            "--temperature", "0", "-q"]
    one = [json.loads(x) for x in hermes(hermes_exe, *args).stdout.splitlines()]
    many = [json.loads(x) for x in hermes(hermes_exe, *args, "--parallel", "3").stdout.splitlines()]
    assert len(one) == 6 and all(validation_errors(r["output"], schema) == [] for r in one + many), one + many
    assert sum("closed_to_fit" in r for r in one) >= 3
    key = {r["id"]: (r["output"], r.get("closed_to_fit")) for r in one}
    assert {r["id"]: (r["output"], r.get("closed_to_fit")) for r in many} == key
