"""The function-calling loop as a reply logic: generate -> parse calls -> validate ->
approve -> run -> one `tool` turn of responses -> generate again, until the model
answers without a call or the round limit is reached (reported, never silent).

Errors the model can fix (unknown tool, invalid arguments, a tool that raised or timed
out) go back to it as the tool response, as the Hermes scripts do. A call cut short by
the reply limit is not the model's mistake: it is an error, like a cut JSON answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.errors import OutputContractError, UsageError
from hermes_cli.modes.events import Logic, Reply, Request, ToolResultEvent
from hermes_cli.modes.tools.protocol import (
    MARK,
    ToolCall,
    forced_call_grammar,
    lazy_call_grammar,
    parse_tool_calls,
    response_block,
    validate_arguments,
)
from hermes_cli.modes.tools.runner import run_call
from hermes_cli.modes.tools.tool import DEFAULT_MAX_ROUNDS, DEFAULT_TIMEOUT, Tool
from hermes_cli.prompt.messages import Message

Approve = Callable[[ToolCall], bool]


@dataclass
class ToolOptions:
    """How a command runs tools: which, the choice, the limits, and whether to ask."""

    tools: dict[str, Tool]
    choice: str = "auto"
    max_rounds: int = DEFAULT_MAX_ROUNDS
    timeout: float = DEFAULT_TIMEOUT
    yes: bool = False


class ToolsRefused(UsageError):
    """A call needs approval that nobody can give (non-interactive, no --yes)."""


def check_choice(choice: str, tools: dict[str, Tool]) -> None:
    if choice not in ("auto", "none", "required") and choice not in tools:
        raise UsageError(f"--tool-choice {choice}: no such tool (tools: {', '.join(tools)})")


def tools_reply(history: list[Message], opts: ToolOptions, params: SamplingParams, *,
                approve: Approve) -> Logic:
    """The loop over `history` (which starts with the tool system prompt).

    `opts.choice`: "auto" (calls held to the schemas once the model opens one), "none",
    "required" (the first reply must call a tool) or a tool's name (that tool); forced
    calls are written under a grammar, so even a weak model makes a valid call.
    `approve` is asked before each call; False declines it (the model is told).
    """
    tools, choice = opts.tools, opts.choice
    check_choice(choice, tools)
    forced = None
    if choice == "required":
        forced = forced_call_grammar(list(tools.values()))
    elif choice not in ("auto", "none"):
        forced = forced_call_grammar([tools[choice]])
    lazy = lazy_call_grammar(list(tools.values())) if choice != "none" else None
    messages = list(history)
    added: list[Message] = []
    results: list[GenerationResult] = []
    rounds = 0
    while True:
        grammar = forced if rounds == 0 and forced is not None else lazy
        result = yield Request(messages, params, grammar, show="tools" if choice != "none" else "text")
        results.append(result)
        reply = Message("assistant", result.text, token_ids=result.token_ids)
        if result.finish_reason == "interrupted":
            return Reply(result.text, [*added, reply], results, stopped="interrupted", rounds=rounds)
        if result.finish_reason in ("length", "context") and _has_open_call(result.text):
            why = "--max-tokens" if result.finish_reason == "length" else "the context size"
            raise OutputContractError(
                f"a tool call was cut after {result.completion_tokens} tokens by {why}: it was "
                "not run", hint="raise --max-tokens (or --ctx)")
        parsed = parse_tool_calls(result.text) if choice != "none" else None
        if parsed is None or not parsed.has_calls:
            return Reply(result.text, [*added, reply], results, stopped="answer", rounds=rounds)
        if rounds >= opts.max_rounds:
            return Reply(result.text, [*added, reply], results, stopped="round_limit", rounds=rounds)
        schema_only = [c for c in parsed.calls if c.name in tools and not tools[c.name].runnable]
        if schema_only:
            return Reply(result.text, [*added, reply], results, stopped="schema_only",
                         rounds=rounds, pending=schema_only)
        rounds += 1
        blocks = []
        for err in parsed.errors:
            yield ToolResultEvent("?", "error", err)
            blocks.append(response_block("error", f"malformed tool call: {err}"))
        for call in parsed.calls:
            try:
                status, content = _run_one(call, tools, opts.timeout, approve)
            except KeyboardInterrupt:  # Ctrl-C while a tool runs or asks: keep what was said
                return Reply(result.text, [*added, reply], results, stopped="interrupted", rounds=rounds)
            yield ToolResultEvent(call.name, status, content)
            blocks.append(response_block(call.name, content if status == "ok" else {"error": content}))
        tool_turn = Message("tool", "\n".join(blocks))
        added += [reply, tool_turn]
        messages += [reply, tool_turn]


def _has_open_call(text: str) -> bool:
    return text.rfind(MARK) > text.rfind("</tool_call>")


def _run_one(call: ToolCall, tools: dict[str, Tool], timeout: float,
             approve: Approve) -> tuple[str, Any]:
    """(status, content): "ok" and the result, or "error"/"declined" and a message."""
    tool = tools.get(call.name)
    if tool is None:
        return "error", f"unknown tool {call.name}; the tools are: {', '.join(tools)}"
    problems = validate_arguments(tool, call.arguments)
    if problems:
        return "error", "invalid arguments: " + "; ".join(problems[:5])
    if not (tool.preapproved or approve(call)):
        return "declined", "the user declined to run this tool"
    ok, content = run_call(tool, call.arguments, tool.timeout or timeout)
    return ("ok", content) if ok else ("error", content)


def short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
