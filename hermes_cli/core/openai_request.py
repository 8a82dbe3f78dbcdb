"""An OpenAI chat-completions request, read into what every front end runs: our messages,
a reply mode (text, JSON under a schema, or tools) and checked sampling settings. Read
for `hermes serve` (a request's body) and `hermes batch` (an OpenAI Batch file's line).

Everything a client sends is checked here, before the model sees anything, and a bad
field is one `BadRequest` naming it (answered as OpenAI's 400 error): values against the
one limits table (engine/params.py), schemas by the JSON Schema validator, tool
definitions, message roles and shapes. Message text stays text: the prompt renderer never
turns it into control tokens, whatever it spells.

The conversation comes in the OpenAI shape and goes to the model in the Hermes one: an
assistant turn's `tool_calls` become `<tool_call>` blocks in the model's key order, and
the `tool` messages that answer them one Hermes tool turn of `<tool_response>` blocks,
each named after the call it answers (hermes's own `--endpoint` client sends those
blocks already written; they are taken as they are).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from hermes_cli import jsontext
from hermes_cli.engine.params import SAMPLING_LIMITS, SamplingParams, sampling_problem
from hermes_cli.errors import HermesError
from hermes_cli.modes.json_mode import JsonMode
from hermes_cli.modes.reply_mode import ReplyMode
from hermes_cli.modes.tools.loop import ToolOptions
from hermes_cli.modes.tools.protocol import response_block
from hermes_cli.modes.tools.tool import Tool
from hermes_cli.prompt.messages import Message
from hermes_cli.prompt.tool_calls import call_block, parse_tool_calls, response_blocks

MAX_STOP = 4  # as OpenAI: up to four stop sequences
# OpenAI's field -> ours; the rest of the limits table by its own names (top_k, min_p...)
_RENAMED = {"max_completion_tokens": "max_tokens", "repetition_penalty": "repeat_penalty",
            "thinking_budget": "think_budget"}
_IGNORED = {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "stream_options",
            "chat_template_kwargs", "messages", "model", "stream", "tools", "tool_choice", "response_format", "stop",
            "n"}
_UNSUPPORTED = {"logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction",
                "functions", "function_call", "web_search_options"}


class BadRequest(Exception):
    """A request we cannot answer as asked: OpenAI's 400, `param` naming the field."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


@dataclass
class ChatRequest:
    turns: list[Message]  # the conversation, Hermes-shaped, the leading system prompt apart
    system: str | None
    mode: ReplyMode
    params: SamplingParams
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)
    thinking: bool | None = None  # chat_template_kwargs.enable_thinking (vLLM's, llama-server's)

    def messages(self) -> list[Message]:
        """What the model is sent: the mode's system prompt (JSON or tools), the user's
        system prompt after it, then the turns."""
        return self.mode.messages(self.system, self.turns)


def parse(body: bytes, defaults: SamplingParams, call_format: str) -> ChatRequest:
    """The request in `body`, checked; `defaults` fill the sampling fields it leaves out."""
    try:
        data = jsontext.loads(body, max_depth=jsontext.SCHEMA_DEPTH)
    except jsontext.BadJson as e:
        raise BadRequest(f"the request body is {e}") from None
    return parse_object(data, defaults, call_format)


def parse_object(data: Any, defaults: SamplingParams, call_format: str) -> ChatRequest:
    """The request `data` (parsed JSON, checked by jsontext), checked."""
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    for name in data:
        if name in _UNSUPPORTED and data[name] not in (None, False, 0, 0.0, [], {}):
            raise BadRequest(f"{name} is not supported by hermes serve", param=name, code="unsupported_parameter")
    if data.get("n") not in (None, 1):
        raise BadRequest("n must be 1: one choice per request", param="n")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("model must be a string", param="model")
    stream = _flag(data, "stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("stream_options must be an object", param="stream_options")
    include_usage = bool(options and options.get("include_usage") is True)
    system, turns = _conversation(data.get("messages"), call_format)
    mode = _mode(data, call_format)
    return ChatRequest(turns, system, mode, _params(data, defaults), model, stream, include_usage, _stop(data),
                       _thinking(data.get("chat_template_kwargs")))


def _thinking(kwargs: Any) -> bool | None:
    if kwargs is None:
        return None
    if not isinstance(kwargs, dict):
        raise BadRequest("chat_template_kwargs must be an object", param="chat_template_kwargs")
    value = kwargs.get("enable_thinking")
    if value is not None and not isinstance(value, bool):
        raise BadRequest("chat_template_kwargs.enable_thinking must be true or false", param="chat_template_kwargs")
    return value


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false", param=name)
    return value


def _params(data: dict[str, Any], defaults: SamplingParams) -> SamplingParams:
    return dataclasses.replace(defaults, **sampling_fields(data))


def sampling_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The sampling values the request sets, by our names, checked against the limits table."""
    values: dict[str, Any] = {}
    if data.get("ignore_eos") is not None:  # llama-server's and vLLM's: never end by choice (benchmarks)
        values["ignore_eos"] = _flag(data, "ignore_eos")
    for name, value in data.items():
        if name == "ignore_eos":
            continue
        ours = _RENAMED.get(name, name)
        if name in _IGNORED or name in _UNSUPPORTED or value is None:
            continue
        if ours in values and values[ours] != value:
            raise BadRequest(f"{name} and its other name disagree", param=name)
        if ours not in SAMPLING_LIMITS or ours == "fast_forward":
            raise BadRequest(f"unknown field {name!r}", param=name, code="unknown_parameter")
        problem = sampling_problem(ours, value)
        if problem:
            raise BadRequest(f"{name} {problem}", param=name)
        values[ours] = SAMPLING_LIMITS[ours][0](value)
    return values


def _stop(data: dict[str, Any]) -> list[str]:
    stop = data.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise BadRequest("stop must be a string or a list of non-empty strings", param="stop")
    if len(stops) > MAX_STOP:
        raise BadRequest(f"stop takes at most {MAX_STOP} sequences", param="stop")
    return stops


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or a list of text parts (joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequest(f"{where}: only text content parts are supported, not {kind!r}", param=where)
            parts.append(part["text"])
        return "".join(parts)
    raise BadRequest(f"{where}: content must be a string or a list of text parts", param=where)


def _conversation(messages: Any, call_format: str) -> tuple[str | None, list[Message]]:
    """(the leading system prompt, the rest as Hermes turns)."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    turns: list[Message] = []
    names: dict[str, str] = {}  # tool_call_id -> the function it called
    responses: list[str] = []  # the tool messages since the last assistant turn
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(f"{where} must be an object", param=where)
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"{where}: role must be system, user, assistant or tool, not {role!r}",
                             param=f"{where}.role")
        if role != "tool" and responses:
            turns.append(Message("tool", "\n".join(responses)))
            responses = []
        content = m.get("content")
        if role == "assistant":
            turns.append(Message("assistant", _assistant(m, where, names, call_format)))
        elif role == "tool":
            responses += _tool_response(_text(content, f"{where}.content"), m.get("tool_call_id"), names)
        else:
            turns.append(Message(role, _text(content, f"{where}.content")))
    if responses:
        turns.append(Message("tool", "\n".join(responses)))
    if turns[0].role == "system":
        return turns[0].content, turns[1:]
    return None, turns


def _assistant(m: dict[str, Any], where: str, names: dict[str, str], call_format: str) -> str:
    content = m.get("content")
    text = "" if content is None else _text(content, f"{where}.content")
    calls = m.get("tool_calls") or []
    if not isinstance(calls, list):
        raise BadRequest(f"{where}.tool_calls must be a list", param=f"{where}.tool_calls")
    blocks = []
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequest(f"{where}.tool_calls[{k}] needs a function name", param=f"{where}.tool_calls")
        raw = fn.get("arguments") or "{}"
        try:
            arguments = jsontext.loads(raw) if isinstance(raw, str) else raw
        except jsontext.BadJson as e:
            raise BadRequest(f"{where}.tool_calls[{k}]: the arguments are {e}", param=f"{where}.tool_calls") from None
        if isinstance(call.get("id"), str):
            names[call["id"]] = fn["name"]
        blocks.append(call_block(fn["name"], arguments, call_format))
    if blocks and not parse_tool_calls(text).calls:  # hermes's own client sends the text too
        text = "\n".join([text.rstrip(), *blocks]) if text.strip() else "\n".join(blocks)
    return text


def _tool_response(text: str, call_id: Any, names: dict[str, str]) -> list[str]:
    already = response_blocks(text)
    if already:
        return already
    name = names.get(call_id, "tool") if isinstance(call_id, str) else "tool"
    try:
        content: Any = json.loads(text)
    except ValueError:
        content = text
    return [response_block(name, content)]


def _mode(data: dict[str, Any], call_format: str) -> ReplyMode:
    json_mode = _response_format(data.get("response_format"))
    tools = _tools(data.get("tools"), data.get("tool_choice"), call_format)
    if json_mode is not None and tools is not None:
        raise BadRequest("response_format json and tools do not go together", param="response_format")
    return ReplyMode(json=json_mode, tools=tools)


def _response_format(spec: Any) -> JsonMode | None:
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return JsonMode(None, "response_format")
    if kind != "json_schema":
        raise BadRequest("response_format.type must be text, json_object or json_schema",
                         param="response_format")
    inner = spec.get("json_schema")
    schema = inner.get("schema") if isinstance(inner, dict) else None
    if not isinstance(schema, dict):
        raise BadRequest("response_format.json_schema.schema must be a JSON Schema object",
                         param="response_format.json_schema")
    from hermes_cli.modes.json_schema import check_schema

    mode = JsonMode(schema, "response_format.json_schema")
    try:
        check_schema(schema, "response_format.json_schema.schema")
        mode.check()
    except HermesError as e:
        raise BadRequest(str(e), param="response_format.json_schema") from None
    return mode


def _tools(spec: Any, choice: Any, call_format: str) -> ToolOptions | None:
    if spec is None or spec == []:
        if choice not in (None, "none", "auto"):
            raise BadRequest("tool_choice needs tools", param="tool_choice")
        return None
    if not isinstance(spec, list):
        raise BadRequest("tools must be a list", param="tools")
    tools: dict[str, Tool] = {}
    from hermes_cli.modes.json_schema import check_schema

    for k, item in enumerate(spec):
        fn = item.get("function") if isinstance(item, dict) and item.get("type", "function") == "function" else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(fn, dict) or not isinstance(name, str) or not name or len(name) > 64:
            raise BadRequest(f"tools[{k}] needs a function name (1 to 64 characters)", param=f"tools[{k}]")
        if name in tools or name in ("auto", "none", "required"):
            raise BadRequest(f"a tool may not be named {name}: " + ("another one is" if name in tools else
                             "tool_choice says that"), param=f"tools[{k}]")
        parameters = fn.get("parameters") or {"type": "object", "properties": {}}
        description = fn.get("description") or ""
        if not isinstance(description, str):
            raise BadRequest(f"tools[{k}].function.description must be a string", param=f"tools[{k}]")
        try:
            check_schema(parameters, f"tools[{k}].function.parameters")
        except HermesError as e:
            raise BadRequest(str(e), param=f"tools[{k}]") from None
        tools[name] = Tool(name, description, parameters)  # a schema only: calls go back to the client
    return ToolOptions(tools, choice=_choice(choice, tools), call_format=call_format)


def _choice(choice: Any, tools: dict[str, Tool]) -> str:
    if choice is None:
        return "auto"
    if choice in ("auto", "none", "required"):
        return str(choice)
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str) or name not in tools:
        raise BadRequest("tool_choice must be auto, none, required, or a function among the tools",
                         param="tool_choice")
    return name
