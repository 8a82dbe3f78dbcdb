"""OpenAI Batch files in `hermes batch`: a line prepared for OpenAI's Batch API or vLLM's
`run-batch` (`custom_id`, `method`, `url`, `body`) runs here unchanged, and with
`--format openai` each result is written as that API's output line (`custom_id`,
`response.status_code`, `response.body` a `chat.completion`), so the file goes back to
whatever reads those.

The body is read by the same reader as `hermes serve`'s requests
(core/openai_request.py): messages (tool calls and tool results as Hermes turns),
`response_format` (JSON under the schema), `tools` and `tool_choice` (schemas only: the
calls come back in the output, nothing runs), sampling fields and `stop`. What the line
sets overrides the command line, as a hermes line's own fields do.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from hermes_cli.core.openai_reply import assistant_message, completion_object, finish_reason, tool_call, usage_of
from hermes_cli.engine.params import SamplingParams
from hermes_cli.prompt.call_format import AUTO

ENDPOINT = "/v1/chat/completions"


def is_openai_line(obj: Any) -> bool:
    return isinstance(obj, dict) and "custom_id" in obj and "body" in obj


def item_from_openai(obj: dict[str, Any], line: int) -> Any:
    """The Item an OpenAI Batch line asks for (its error, when it cannot be run)."""
    from hermes_cli.core.batch import Item
    from hermes_cli.core.openai_request import BadRequest, parse_object

    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return Item(None, line, error="custom_id must be a non-empty string")
    item = Item(custom_id, line)
    if obj.get("method", "POST") != "POST" or obj.get("url", ENDPOINT) != ENDPOINT:
        item.error = f"only POST {ENDPOINT} is supported, not {obj.get('method')} {obj.get('url')}"
        return item
    body = obj["body"]
    if isinstance(body, dict) and body.get("stream"):
        item.error = "body.stream: a batch line's answer is not streamed"
        return item
    try:
        request = parse_object(body, SamplingParams(), AUTO)
    except BadRequest as e:
        item.error = f"body: {e}"
        return item
    item.messages, item.system = request.turns, request.system
    item.overrides = _given_sampling(body)
    item.stop = request.stop
    mode = request.mode
    if mode.json is not None:
        item.json, item.schema = mode.json.schema is None, mode.json.schema
    item.tool_options = mode.tools  # its own tools (schemas): the call format is the model's, set at run time
    item.tools = mode.tools is not None
    return item


def _given_sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling fields the body sets, by our names (checked by the reader already)."""
    from hermes_cli.core.openai_request import sampling_fields

    return sampling_fields(body)


def output_line(rec: dict[str, Any], model: str) -> dict[str, Any]:
    """A hermes batch record as an OpenAI Batch output line."""
    request_id = uuid.uuid4().hex
    line_id = f"batch_req_{request_id[:24]}"
    if "error" in rec:
        error: dict[str, Any] = {"code": "invalid_line", "message": rec["error"]}
        if rec.get("id") is None:
            error["line"] = rec.get("line")
        return {"id": line_id, "custom_id": rec.get("id"), "response": None, "error": error}
    out = rec.get("output")
    calls = [tool_call(c["name"], c["arguments"]) for c in rec.get("calls") or []]
    message = assistant_message(None if calls else out if isinstance(out, str) else json.dumps(out),
                                rec.get("reasoning"), calls)
    finish = finish_reason(calls=bool(calls), cut=rec.get("finish_reason") in ("length", "context"))
    used = usage_of(rec.get("prompt_tokens", 0), rec["completion_tokens"]) if "completion_tokens" in rec else None
    body = completion_object(f"chatcmpl-{request_id}", int(time.time()), model, message, finish, used)
    if "probabilities" in rec:  # decision mode: hermes's own field, beside the API's
        body["probabilities"] = rec["probabilities"]
    return {"id": line_id, "custom_id": rec["id"],
            "response": {"status_code": 200, "request_id": request_id, "body": body}, "error": None}
