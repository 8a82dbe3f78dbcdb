"""The function-calling loop as a reply logic: generate -> parse calls -> validate ->
approve -> run -> one `tool` turn of responses -> generate again, until the model
answers without a call or the round limit is reached (reported, never silent).

A call that does not parse or validate (unknown tool, invalid arguments) is asked for
again under the call grammar, a bounded number of times, like a JSON answer that broke
its schema; a tool that raised or timed out goes back to the model as the tool
response, as the Hermes scripts do. A call cut short by the reply limit is not the
model's mistake: it is an error, like a cut JSON answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.errors import HermesError, OutputContractError, ServerError, UsageError, cut_short
from hermes_cli.modes.events import Logic, Notice, Reply, Request, ToolResultEvent, answer_message
from hermes_cli.modes.json_mode import DEFAULT_RETRIES
from hermes_cli.modes.tools.protocol import forced_call_grammar, lazy_call_grammar, response_block, validate_arguments
from hermes_cli.modes.tools.runner import run_call
from hermes_cli.modes.tools.tool import DEFAULT_MAX_ROUNDS, DEFAULT_TIMEOUT, Tool
from hermes_cli.prompt.call_format import AUTO, decided
from hermes_cli.prompt.meant_calls import tag_inside
from hermes_cli.prompt.messages import Message
from hermes_cli.prompt.tool_calls import OPEN as CALL_OPEN
from hermes_cli.prompt.tool_calls import ParsedReply, ToolCall, call_block, parse_tool_calls

Approve = Callable[[ToolCall], bool]


@dataclass
class ToolOptions:
    """How a command runs tools: which, the choice, the limits, and whether to ask."""

    tools: dict[str, Tool]
    choice: str = "auto"
    max_rounds: int = DEFAULT_MAX_ROUNDS
    timeout: float = DEFAULT_TIMEOUT
    yes: bool = False
    # The model's key order (prompt/call_format.py): "auto" until core/backends.py's
    # with_call_format decides it from the model, or the user's choice.
    call_format: str = AUTO


def check_choice(choice: str, tools: dict[str, Tool]) -> None:
    if choice not in ("auto", "none", "required") and choice not in tools:
        raise UsageError(f"--tool-choice {choice}: no such tool (tools: {', '.join(tools)})")


def tools_reply(history: list[Message], opts: ToolOptions, params: SamplingParams, *,
                approve: Approve, retries: int = DEFAULT_RETRIES) -> Logic:
    """The loop over `history` (which starts with the tool system prompt).

    `opts.choice`: "auto" (calls held to the schemas once the model opens one), "none",
    "required" (the first reply must call a tool) or a tool's name (that tool); forced
    calls are written under a grammar, so even a weak model makes a valid call.
    `approve` is asked before each call; False declines it (the model is told).

    Every reply ends one way: whole calls, validated, then run; or a call cut by the
    limit (even inside its tag), which raises (exit 6); or calls that do not parse or
    validate (a served engine has no grammar of ours), asked for again as calls, under
    the call grammar, `retries` times, then an error. A reply after a failed call is
    never taken as the answer.
    """
    tools, choice = opts.tools, opts.choice
    check_choice(choice, tools)
    fmt = decided(opts.call_format)
    any_call = forced_call_grammar(list(tools.values()), fmt)
    forced = any_call if choice == "required" else None
    if choice not in ("auto", "none", "required"):
        forced = forced_call_grammar([tools[choice]], fmt)
    lazy = lazy_call_grammar(list(tools.values()), fmt) if choice != "none" else None
    messages = list(history)
    added: list[Message] = []
    results: list[GenerationResult] = []
    rounds = 0
    retry: list[Message] | None = None  # the conversation plus the failed call and why
    failed = 0
    while True:
        must_call = retry is not None or (rounds == 0 and forced is not None)
        grammar = (forced or any_call) if must_call else lazy
        result = yield Request(retry or messages, params, grammar, show="tools" if choice != "none" else "text")
        results.append(result)
        reply = answer_message(result)
        if result.finish_reason == "interrupted":
            return Reply(result.text, [*added, reply], results, stopped="interrupted", rounds=rounds)
        parsed = parse_tool_calls(result.text) if choice != "none" or must_call else None
        if result.finish_reason in ("length", "context") and (
                result.grammar_open or (parsed is not None and parsed.open)):
            raise cut_short("a tool call", "it was not run", result.finish_reason, result.completion_tokens)
        problems = _call_problems(parsed, tools, must_call)
        if problems:
            failed += 1
            if failed > retries:
                raise _failed_calls(result, failed, problems)
            yield Notice("the tool call was malformed (" + "; ".join(problems[:3]) + "); asking again")
            retry = [*messages, reply, Message("tool", "\n".join(
                response_block("error", f"malformed tool call: {p}") for p in problems[:5]))]
            continue
        retry = None
        if parsed is None or not parsed.calls:
            return Reply(result.text, [*added, reply], results, stopped="answer", rounds=rounds)
        if any(c.meant for c in parsed.calls):  # read as the model meant (prompt/tool_calls.py)
            reply = _as_meant(reply, parsed.calls, fmt)
            for call in parsed.calls:
                if call.meant:
                    yield Notice(f"the call to {call.name} was closed inside its string; read up to where the "
                                 f"model ended it: {short(call.arguments)}")
        if rounds >= opts.max_rounds:
            return Reply(result.text, [*added, reply], results, stopped="round_limit", rounds=rounds)
        schema_only = [c for c in parsed.calls if not tools[c.name].runnable]
        if schema_only:
            return Reply(result.text, [*added, reply], results, stopped="schema_only",
                         rounds=rounds, pending=schema_only)
        rounds += 1
        blocks = []
        for call in parsed.calls:
            try:
                status, content = _run_one(call, tools[call.name], opts.timeout, approve)
            except KeyboardInterrupt:  # Ctrl-C while a tool runs or asks: keep what was said
                return Reply(result.text, [*added, reply], results, stopped="interrupted", rounds=rounds)
            yield ToolResultEvent(call.name, status, content)
            blocks.append(response_block(call.name, content if status == "ok" else {"error": content}))
        tool_turn = Message("tool", "\n".join(blocks))
        added += [reply, tool_turn]
        messages += [reply, tool_turn]


def _as_meant(reply: Message, calls: list[ToolCall], call_format: str) -> Message:
    """The assistant turn with its calls as read: the text before the first call, then
    each call written whole (the text the model wrote inside a string after it meant to
    end its call is not kept, so the next round's prompt reads as a call and its result)."""
    at = reply.content.find(CALL_OPEN)
    before = reply.content[:at] if at >= 0 else ""
    blocks = "\n".join(call_block(c.name, c.arguments, call_format) for c in calls)
    return Message("assistant", before + blocks)


def _call_problems(parsed: ParsedReply | None, tools: dict[str, Tool], must_call: bool) -> list[str]:
    """Why the calls in a reply cannot be run as written (empty: they can, or it has none)."""
    if parsed is None:
        return []
    problems = list(parsed.errors)
    for call in parsed.calls:
        tool = tools.get(call.name)
        if tool is None:
            problems.append(f"unknown tool {call.name}; the tools are: {', '.join(tools)}")
            continue
        tag = tag_inside(call.arguments)
        if tag is not None:
            problems.append(f"the arguments of {call.name} hold {tag} inside a string: the call was closed "
                            "before its string; close the string, then the call")
            continue
        invalid = validate_arguments(tool, call.arguments)
        if invalid:
            problems.append(f"invalid arguments for {call.name}: " + "; ".join(invalid[:5]))
    if must_call and not parsed.has_calls:
        problems.append("the reply has no tool call, and one is required")
    return problems


def _failed_calls(result: GenerationResult, attempts: int, problems: list[str]) -> HermesError:
    """The error once retries run out: the writer's fault when no grammar of ours held the
    calls (a served engine's, exit 5), else the answer's contract broken (exit 6)."""
    what = f"the tool call was still malformed after {attempts} attempts: {problems[0]}"
    if not result.enforced:
        return ServerError(f"the server wrote no valid tool call: {what}",
                           hint="serve a model trained for tool calls, or one whose server enforces schemas")
    if "inside a string" in problems[0]:
        return OutputContractError(what, hint="the model ends its call inside an argument string: another "
                                   "--seed, a lower --temperature or a larger model")
    return OutputContractError(what, hint="the tool's schema uses keywords a grammar cannot enforce")


def _run_one(call: ToolCall, tool: Tool, timeout: float, approve: Approve) -> tuple[str, Any]:
    """(status, content) of a validated call: "ok" and the result, or "error"/"declined"
    and a message."""
    if not (tool.preapproved or approve(call)):
        return "declined", "the user declined to run this tool"
    ok, content = run_call(tool, call.arguments, tool.timeout or timeout)
    return ("ok", content) if ok else ("error", content)


def short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
