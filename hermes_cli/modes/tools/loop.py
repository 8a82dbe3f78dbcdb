"""The function-calling loop: generate -> parse calls -> validate -> approve -> run ->
one `tool` turn of responses -> generate again, until the model answers without a call
or the round limit is reached (reported, never silent).

Errors the model can fix (unknown tool, invalid arguments, a tool that raised or timed
out, a malformed call) go back to it as the tool response, as the Hermes scripts do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.errors import UsageError
from hermes_cli.modes.tools.protocol import (
    ToolCall,
    forced_call_grammar,
    parse_tool_calls,
    response_block,
    validate_arguments,
)
from hermes_cli.modes.tools.runner import run_call
from hermes_cli.modes.tools.tool import DEFAULT_MAX_ROUNDS, DEFAULT_TIMEOUT, Tool
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message


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


@dataclass
class ToolEvent:
    kind: str  # "call" | "result" | "error" | "declined"
    name: str
    detail: Any


@dataclass
class LoopResult:
    text: str  # the final answer (or the last reply, when the loop stopped early)
    messages: list[Message]  # every message the loop added, in order
    rounds: int
    stopped: str  # "answer" | "round_limit" | "schema_only"
    pending: list[ToolCall] = field(default_factory=list)  # calls to schema-only tools
    results: list[GenerationResult] = field(default_factory=list)


def run_tool_loop(
    engine: Engine, chat: ChatML, history: list[Message], tools: dict[str, Tool],
    params: SamplingParams, *, tool_choice: str = "auto", max_rounds: int = DEFAULT_MAX_ROUNDS,
    timeout: float = DEFAULT_TIMEOUT, approve: Callable[[ToolCall], bool],
    report: Callable[[ToolEvent], None] = lambda _e: None,
    generate: Callable[[list[Message], Any], GenerationResult] | None = None,
) -> LoopResult:
    """Run the loop over `history` (which starts with the tool system prompt).

    Args:
        tool_choice: "auto", "none", "required" (the first reply must call a tool) or a
            tool's name (the first reply must call that tool); forced calls are made by
            a grammar, so even a weak model writes a valid call with valid arguments.
        approve: asked before each call; False declines it (the model is told).
        generate: for tests of the loop's logic; defaults to the engine.
    """
    if tool_choice not in ("auto", "none", "required") and tool_choice not in tools:
        raise UsageError(f"--tool-choice {tool_choice}: no such tool "
                         f"(tools: {', '.join(tools)})")
    forced = None
    if tool_choice == "required":
        forced = engine.grammar(forced_call_grammar(list(tools.values())))
    elif tool_choice not in ("auto", "none"):
        forced = engine.grammar(forced_call_grammar([tools[tool_choice]]))

    def default_generate(messages: list[Message], grammar: Any) -> GenerationResult:
        if grammar is None and tool_choice != "none":
            return generate_guarded(engine, chat.render(messages), params, list(tools.values()))
        return engine.generate(chat.render(messages), params, grammar=grammar,
                               strict_utf8=grammar is not None).consume()

    gen = generate or default_generate
    messages = list(history)
    added: list[Message] = []
    results: list[GenerationResult] = []
    rounds = 0
    while True:
        result = gen(messages, forced if rounds == 0 else None)
        results.append(result)
        reply = Message("assistant", result.text, token_ids=result.token_ids)
        parsed = parse_tool_calls(result.text) if tool_choice != "none" else None
        if parsed is None or not parsed.has_calls:
            added.append(reply)
            return LoopResult(result.text, added, rounds, "answer", results=results)
        if rounds >= max_rounds:
            added.append(reply)
            return LoopResult(result.text, added, rounds, "round_limit", results=results)
        schema_only = [c for c in parsed.calls if c.name in tools and tools[c.name].function is None]
        if schema_only:
            added.append(reply)
            return LoopResult(result.text, added, rounds, "schema_only", pending=schema_only,
                              results=results)
        rounds += 1
        blocks = [response_block("error", f"malformed tool call: {e}") for e in parsed.errors]
        for err in parsed.errors:
            report(ToolEvent("error", "?", err))
        for call in parsed.calls:
            blocks.append(response_block(call.name, _run_one(call, tools, timeout, approve, report)))
        tool_turn = Message("tool", "\n".join(blocks))
        added += [reply, tool_turn]
        messages += [reply, tool_turn]


MARK = "<tool_call>"
MAX_CALLS_PER_REPLY = 8


def generate_guarded(engine: Engine, prompt: list[int], params: SamplingParams,
                     tools: list[Tool]) -> GenerationResult:
    """Free text, but once the model writes `<tool_call>` the call that follows is
    constrained to the tools' schemas, so an `auto` call is never malformed.

    Without lazy grammars in llama-cpp-python, the reply is made in phases over the same
    KV cache (each phase evaluates only its new tokens): free text until the marker
    appears; the token that completed it is dropped and the call grammar writes the rest
    of the tag, the JSON and `</tool_call>`; then free text again (another call, or the
    end of the reply).
    """
    import dataclasses

    ids: list[int] = []
    texts: list[str] = []
    results: list[GenerationResult] = []

    def budget() -> SamplingParams:
        if params.max_tokens is None:
            return params
        return dataclasses.replace(params, max_tokens=max(1, params.max_tokens - len(ids)))

    for _ in range(MAX_CALLS_PER_REPLY + 1):
        gen = engine.generate(prompt + ids, budget())
        window, hit = "", False
        for chunk in gen:
            window = (window + chunk)[-(len(MARK) + 32):]
            if MARK in window:
                hit = True
                gen.close()
                break
        free = gen.result
        assert free is not None
        results.append(free)
        if not hit:
            ids += free.token_ids
            texts.append(free.text)
            break
        # Keep everything but the token that completed the marker; the grammar writes
        # whatever part of the tag is missing after that.
        kept = free.token_ids[:-1]
        kept_text = engine.detokenize(kept, special=False)
        ids += kept
        texts.append(kept_text)
        written = "".join(texts)
        have = next(k for k in range(len(MARK), -1, -1) if written.endswith(MARK[:k]))
        grammar = engine.grammar(forced_call_grammar(tools, opening=MARK[have:] + "\n"))
        call = engine.generate(prompt + ids, budget(), grammar=grammar, strict_utf8=True).consume()
        results.append(call)
        ids += call.token_ids
        texts.append(call.text)
        if call.finish_reason != "stop" or (params.max_tokens and len(ids) >= params.max_tokens):
            break
    last = results[-1]
    return GenerationResult(
        text="".join(texts), token_ids=ids, finish_reason=last.finish_reason,
        prompt_tokens=len(prompt), prompt_evaluated=sum(r.prompt_evaluated for r in results),
        prompt_reused=results[0].prompt_reused, prompt_seconds=results[0].prompt_seconds,
        generation_seconds=sum(r.generation_seconds for r in results[1:]) + results[0].generation_seconds)


def _run_one(call: ToolCall, tools: dict[str, Tool], timeout: float,
             approve: Callable[[ToolCall], bool], report: Callable[[ToolEvent], None]) -> Any:
    tool = tools.get(call.name)
    if tool is None:
        msg = f"unknown tool {call.name}; the tools are: {', '.join(tools)}"
        report(ToolEvent("error", call.name, msg))
        return {"error": msg}
    problems = validate_arguments(tool, call.arguments)
    if problems:
        msg = "invalid arguments: " + "; ".join(problems[:5])
        report(ToolEvent("error", call.name, msg))
        return {"error": msg}
    report(ToolEvent("call", call.name, call.arguments))
    if not approve(call):
        report(ToolEvent("declined", call.name, call.arguments))
        return {"error": "the user declined to run this tool"}
    ok, content = run_call(tool, call.arguments, timeout)
    report(ToolEvent("result" if ok else "error", call.name, content))
    return content if ok else {"error": content}


def short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
