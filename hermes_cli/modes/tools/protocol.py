"""The Hermes function-calling format, exactly as the model was trained on it
(README, "Function calling"):

    system: the Hermes tool prompt with one JSON definition per tool
    assistant: <tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call> (one or more;
               arguments first for Hermes 2 Pro / Θ: prompt/call_format.py)
    tool: <tool_response>\\n{"name": ..., "content": ...}\\n</tool_response> (one per call)

This module writes the prompt and the responses, parses the calls, and builds the grammar
that forces a valid call. Running calls and the loop live beside it (runner, loop).
"""

from __future__ import annotations

import json
from typing import Any

from hermes_cli.modes.tools.tool import Tool
from hermes_cli.prompt.call_format import ARGUMENTS_FIRST, NAME_FIRST, keys
from hermes_cli.prompt.reply_grammar import ReplyGrammar
from hermes_cli.prompt.tool_calls import CLOSE, OPEN, RESPONSE_CLOSE, RESPONSE_OPEN

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


# Hermes 2 Pro / Θ's model card, verbatim apart from the tool list: the FunctionCall
# schema and the example call arguments first (and its blanks: "</tools> Use", "} For").
ARGUMENTS_FIRST_PROMPT = (
    "You are a function calling AI model. You are provided with function signatures within "
    "<tools></tools> XML tags. You may call one or more functions to assist with the user "
    "query. Don't make assumptions about what values to plug into functions. Here are the "
    "available tools: <tools> {tools} </tools> Use the following pydantic model json schema "
    "for each tool call you will make: {{\"properties\": {{\"arguments\": {{\"title\": \"Arguments\", "
    "\"type\": \"object\"}}, \"name\": {{\"title\": \"Name\", \"type\": \"string\"}}}}, "
    "\"required\": [\"arguments\", \"name\"], \"title\": \"FunctionCall\", \"type\": \"object\"}} "
    "For each function call return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
    "{{\"arguments\": <args-dict>, \"name\": <function-name>}}\n</tool_call>"
)
PROMPTS = {NAME_FIRST: SYSTEM_PROMPT, ARGUMENTS_FIRST: ARGUMENTS_FIRST_PROMPT}


def system_prompt(tools: list[Tool], user_system: str | None = None, call_format: str = NAME_FIRST) -> str:
    """The Hermes tool prompt in the model's call format, then the user's system prompt."""
    text = PROMPTS[call_format].format(tools="\n".join(json.dumps(t.definition(), ensure_ascii=False)
                                                       for t in tools))
    return f"{text}\n\n{user_system}" if user_system else text


# -- parsing what the model wrote ---------------------------------------------------------

def validate_arguments(tool: Tool, arguments: dict[str, Any]) -> list[str]:
    from hermes_cli.modes.json_schema import validation_errors

    return validation_errors(arguments, tool.parameters)


def response_block(name: str, content: Any) -> str:
    return RESPONSE_OPEN + json.dumps({"name": name, "content": content}, ensure_ascii=False) + RESPONSE_CLOSE


# -- grammars for calls -------------------------------------------------------------------

def call_schema(tools: list[Tool], call_format: str = NAME_FIRST) -> dict[str, Any]:
    """The JSON Schema of one call to one of `tools`: a name and arguments that fit that
    tool's parameters, the keys in the model's order (the grammar writes them in the
    schema's order). One alternative per tool, so arguments written first are still
    tied to the name that follows: once they fit one tool only, its name is forced.
    Each tool's `$defs` move to the top (renamed per tool) so that nested models'
    `$ref`s still resolve once the parameters sit inside the call."""
    defs: dict[str, Any] = {}
    options = []
    order = keys(call_format)
    for i, tool in enumerate(tools):
        params = relocate_defs(tool.parameters, f"t{i}_", defs)
        fields = {"name": {"const": tool.name}, "arguments": params}
        options.append({"type": "object", "properties": {k: fields[k] for k in order},
                        "required": list(order), "additionalProperties": False})
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def relocate_defs(schema: dict[str, Any], prefix: str, into: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` without its `$defs`/`definitions`, which go into `into` under
    `prefix`-ed names, with every local `$ref` to them rewritten."""
    local = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    renames = {f"#/{kind}/{name}": f"#/$defs/{prefix}{name}"
               for kind in ("$defs", "definitions") for name in local}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (renames.get(v, v) if k == "$ref" and isinstance(v, str) else rewrite(v))
                    for k, v in node.items() if k not in ("$defs", "definitions") or node is not schema}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name, sub in local.items():
        into[prefix + name] = rewrite(sub)
    out = rewrite(schema)
    assert isinstance(out, dict)
    return out


def _call_rules(tools: list[Tool], call_format: str) -> str:
    from hermes_cli.modes.json_grammar import grammar_schema

    # The call is written as the Hermes prompt shows it (json.dumps's separators, no
    # other whitespace, as every JSON answer is): the form the model was trained on.
    schema = grammar_schema(call_schema(tools, call_format))
    return f'rest: "\\n" call {json.dumps(chr(10) + CLOSE)}\ncall: %json {json.dumps(schema)}\n'


def forced_call_grammar(tools: list[Tool], call_format: str = NAME_FIRST) -> ReplyGrammar:
    """Exactly one `<tool_call>` to one of `tools`, with schema-valid arguments."""
    return ReplyGrammar("lark", f"start: {json.dumps(OPEN)} rest\n" + _call_rules(tools, call_format),
                        abandon=_abandon(call_format), server_schema=call_schema(tools, call_format),
                        server_wrap=(OPEN + "\n", "\n" + CLOSE))


def lazy_call_grammar(tools: list[Tool], call_format: str = NAME_FIRST) -> ReplyGrammar:
    """Free text; once the model writes `<tool_call>`, the call that follows is held to
    the tools' schemas (and the text is free again after `</tool_call>`)."""
    return ReplyGrammar("lark", _call_rules(tools, call_format), trigger=OPEN, abandon=_abandon(call_format))


def _abandon(call_format: str) -> str | None:
    """A call's closing tag written inside its argument string ends the generation there,
    and the call is read as meant (prompt/tool_calls.py: meant_body): the name came first,
    so it is whole. Arguments first, the name is still to come: the grammar writes it, and
    the string is read as meant once the call is done (meant_arguments)."""
    return CLOSE if call_format == NAME_FIRST else None
