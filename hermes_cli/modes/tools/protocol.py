"""The Hermes function-calling format, exactly as the model was trained on it
(README, "Function calling"):

    system: the Hermes tool prompt with one JSON definition per tool
    assistant: <tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call> (one or more)
    tool: <tool_response>\\n{"name": ..., "content": ...}\\n</tool_response> (one per call)

This module writes the prompt and the responses, parses the calls, and builds the grammar
that forces a valid call. Running calls and the loop live beside it (runner, loop).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from hermes_cli.modes.tools.tool import Tool

SYSTEM_PROMPT = (
    "You are a function calling AI model. You are provided with function signatures within "
    "<tools></tools> XML tags. You may call one or more functions to assist with the user "
    "query. Don't make assumptions about what values to plug into functions. Here are the "
    "available tools: <tools> {tools} </tools>Use the following pydantic model json schema "
    "for each tool call you will make: {{\"properties\": {{\"name\": {{\"title\": \"Name\", "
    "\"type\": \"string\"}}, \"arguments\": {{\"title\": \"Arguments\", \"type\": \"object\"}}}}, "
    "\"required\": [\"name\", \"arguments\"], \"title\": \"FunctionCall\", \"type\": \"object\"}}\n"
    "For each function call return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
    "{{\"name\": <function-name>, \"arguments\": <args-dict>}}\n</tool_call>"
)


def system_prompt(tools: list[Tool], user_system: str | None = None) -> str:
    text = SYSTEM_PROMPT.format(tools="\n".join(json.dumps(t.definition(), ensure_ascii=False)
                                                for t in tools))
    return f"{text}\n\n{user_system}" if user_system else text


# -- parsing what the model wrote ---------------------------------------------------------

_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class ParsedReply:
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # blocks that are not valid calls

    @property
    def has_calls(self) -> bool:
        return bool(self.calls or self.errors)


def parse_tool_calls(text: str) -> ParsedReply:
    """Every `<tool_call>` block: a regex, not XML (arguments may hold `&` or `<`);
    `json.loads`, then `ast.literal_eval` for Python-style dicts; a missing closing
    tag at the end of the text is accepted."""
    out = ParsedReply()
    for match in _CALL.finditer(text):
        body = match.group(1).strip()
        if not body:
            out.errors.append("an empty <tool_call> block")
            continue
        try:
            obj = json.loads(body)
        except ValueError:
            try:
                obj = ast.literal_eval(body)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                out.errors.append(f"not valid JSON: {body[:200]}")
                continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            out.errors.append(f"a call needs a \"name\" and \"arguments\": {body[:200]}")
            continue
        args = obj.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                out.errors.append(f"the arguments of {obj['name']} are not a JSON object")
                continue
        if not isinstance(args, dict):
            out.errors.append(f"the arguments of {obj['name']} are not a JSON object")
            continue
        out.calls.append(ToolCall(obj["name"], args))
    return out


def validate_arguments(tool: Tool, arguments: dict[str, Any]) -> list[str]:
    from hermes_cli.modes.json_mode import validation_errors

    return validation_errors(arguments, tool.parameters)


def response_block(name: str, content: Any) -> str:
    return "<tool_response>\n" + json.dumps({"name": name, "content": content},
                                            ensure_ascii=False) + "\n</tool_response>"


# -- grammar for forced calls -------------------------------------------------------------


def forced_call_grammar(tools: list[Tool], opening: str = "<tool_call>\n") -> str:
    """GBNF for exactly one `<tool_call>` to one of `tools`, with schema-valid arguments.

    `opening` is what the grammar writes before the JSON: the whole tag for a forced
    call, or the rest of it when the model has already begun the tag itself.
    """
    from hermes_cli.engine.gbnf import json_schema_to_gbnf

    schema: dict[str, Any] = {"anyOf": [{"type": "object", "properties": {
        "name": {"const": t.name}, "arguments": t.parameters}, "required": ["name", "arguments"],
        "additionalProperties": False} for t in tools]}
    if len(tools) == 1:
        schema = schema["anyOf"][0]
    gbnf = json_schema_to_gbnf(schema)
    gbnf = re.sub(r"^root ::=", "call ::=", gbnf, flags=re.MULTILINE)
    literal = json.dumps(opening)  # a GBNF string literal is JSON-escaped text
    return f'root ::= {literal} call "\\n</tool_call>"\n' + gbnf
