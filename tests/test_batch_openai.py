"""OpenAI Batch files through `hermes batch`: the API's input lines run unchanged, and
`--format openai` writes its output lines, resumable like hermes's own records."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 99}},
          "required": ["name", "age"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"]}}}


def line(custom_id: str, body: dict, url: str = "/v1/chat/completions") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body}) + "\n"


def batch(exe: list[str], model: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, "batch", *args, "-m", str(model), "-q"], input=stdin, capture_output=True,
                          text=True, timeout=180)


def by_id(text: str) -> dict[str, dict]:
    records = [json.loads(x) for x in text.splitlines()]
    found = {r["custom_id"]: r for r in records}
    assert len(found) == len(records), "one output line per custom_id"
    return found


@pytest.mark.parametrize("parallel", ["1", "3"])
def test_an_openai_batch_file_runs_unchanged_and_comes_back_in_the_apis_output_format(
        hermes_exe, models, tmp_path, parallel) -> None:
    lines = "".join([
        line("text", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}),
        *(line(f"json-{seed}", {"model": "gpt-4o", "messages": [{"role": "user", "content": "a person"}],
                                "max_tokens": 80, "seed": seed, "response_format": {
                                    "type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}})
          for seed in range(3)),
        line("call", {"model": "gpt-4o", "messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER],
                      "tool_choice": {"type": "function", "function": {"name": "weather"}}, "max_tokens": 200,
                      "seed": 2}),
        line("embed", {"model": "x", "input": "hi"}, url="/v1/embeddings"),
        line("hot", {"model": "x", "messages": [{"role": "user", "content": "x"}], "temperature": 500}),
    ])
    (tmp_path / "in.jsonl").write_text(lines)
    proc = batch(hermes_exe, models["random"], str(tmp_path / "in.jsonl"), "--format", "openai",
                 "--parallel", parallel, "--ctx", "4096")
    assert proc.returncode == 1, proc.stderr  # two lines failed, as their records say
    out = by_id(proc.stdout)
    assert sorted(out) == ["call", "embed", "hot", "json-0", "json-1", "json-2", "text"]
    for custom_id in ("text", "json-0", "json-1", "json-2", "call"):
        response = out[custom_id]["response"]
        assert response["status_code"] == 200 and out[custom_id]["error"] is None
        body = response["body"]
        assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] > 0
    for seed in range(3):
        jsonschema.validate(json.loads(out[f"json-{seed}"]["response"]["body"]["choices"][0]["message"]["content"]),
                            PERSON)
    choice = out["call"]["response"]["body"]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER["function"]["parameters"])
    assert out["embed"]["response"] is None and "/v1/embeddings" in out["embed"]["error"]["message"]
    assert "temperature must be between 0 and 100" in out["hot"]["error"]["message"]


def test_a_line_sets_its_own_sampling_and_stop_over_the_command_line(hermes_exe, models) -> None:
    lines = line("short", {"messages": [{"role": "user", "content": "go"}], "max_tokens": 7}) + line(
        "stopped", {"messages": [{"role": "user", "content": "go"}], "stop": ["bab"]})
    proc = batch(hermes_exe, models["endless"], "-", "--format", "openai", "--max-tokens", "30", stdin=lines)
    assert proc.returncode == 0, proc.stderr
    out = by_id(proc.stdout)
    short = out["short"]["response"]["body"]["choices"][0]
    assert (short["message"]["content"], short["finish_reason"]) == ("abababa", "length")
    stopped = out["stopped"]["response"]["body"]["choices"][0]
    assert (stopped["message"]["content"], stopped["finish_reason"]) == ("a", "stop")


def test_an_openai_output_file_resumes_with_one_line_per_custom_id(hermes_exe, models, tmp_path) -> None:
    first = "".join(line(f"q{i}", {"messages": [{"role": "user", "content": f"question {i}"}]}) for i in range(3))
    more = "".join(line(f"q{i}", {"messages": [{"role": "user", "content": f"question {i}"}]}) for i in range(3, 5))
    out = tmp_path / "out.jsonl"
    (tmp_path / "in.jsonl").write_text(first)
    assert batch(hermes_exe, models["hi"], str(tmp_path / "in.jsonl"), "-o", str(out), "--format", "openai"
                 ).returncode == 0
    with out.open("a") as fh:  # a line torn by a kill -9
        fh.write('{"id": "batch_req_x", "custom_id": "q3", "response": {"status_co')
    (tmp_path / "in.jsonl").write_text(first + more)
    proc = batch(hermes_exe, models["hi"], str(tmp_path / "in.jsonl"), "-o", str(out), "--format", "openai")
    assert proc.returncode == 0, proc.stderr
    done = by_id(out.read_text())
    assert sorted(done) == [f"q{i}" for i in range(5)]
    assert {r["response"]["body"]["choices"][0]["message"]["content"] for r in done.values()} == {"Hi!"}
