"""The REPL's slash-commands: one table, so /help, completion and the README agree.

Each handler takes the chat session, the output protocol and the argument text. Bad
arguments raise UsageError: the REPL prints one line and the conversation is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_cli.chat.clipboard import copy_to_clipboard
from hermes_cli.chat.ui import ChatUI
from hermes_cli.core.session import ChatSession
from hermes_cli.errors import UsageError

Handler = Callable[[ChatSession, ChatUI, str], "bool | None"]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    handler: Handler
    choices: tuple[str, ...] = ()  # argument completions
    path_arg: bool = False  # complete file paths


COMMANDS: dict[str, Command] = {}


def command(name: str, usage: str, help: str, *, choices: Iterable[str] = (),
            path_arg: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, usage, help, fn, tuple(choices), path_arg)
        return fn

    return register


def dispatch(session: ChatSession, ui: ChatUI, line: str) -> bool:
    """Run one slash-command; True means quit."""
    name, _, arg = line.partition(" ")
    cmd = COMMANDS.get(name.lower())
    if cmd is None:
        raise UsageError(f"unknown command {name}; /help lists them")
    return bool(cmd.handler(session, ui, arg.strip()))


# Sampling parameters /set accepts: name -> (parser, check, description).
def _float(lo: float, hi: float | None = None) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if value < lo or (hi is not None and value > hi):
            raise ValueError(f"must be between {lo} and {hi}" if hi is not None else f"must be ≥ {lo}")
        return value
    return parse


def _int(lo: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < lo:
            raise ValueError(f"must be ≥ {lo}")
        return value
    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda text: None if text.lower() in ("none", "off", "default") else parse(text)


PARAMS: dict[str, Callable[[str], Any]] = {
    "temperature": _float(0.0), "top_p": _float(0.0, 1.0), "top_k": _int(0),
    "min_p": _float(0.0, 1.0), "repeat_penalty": _float(0.0),
    "max_tokens": _optional(_int(1)), "seed": _optional(_int(0)),
}


@command("/help", "/help", "list the commands")
def _help(s: ChatSession, ui: ChatUI, arg: str) -> None:
    width = max(len(c.usage) for c in COMMANDS.values())
    for c in COMMANDS.values():
        ui.say(f"{c.usage:<{width}}  {c.help}")
    ui.say("Enter sends · Esc Enter (Alt-Enter): new line · Ctrl-C stops a reply · Ctrl-D quits",
           style="dim")


@command("/system", "/system [TEXT|clear]", "show, set or clear the system prompt",
         choices=("clear",))
def _system(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if not arg:
        ui.say(s.conversation.system or "(no system prompt)")
        return
    s.set_system(None if arg == "clear" else arg)
    ui.say("system prompt cleared" if s.conversation.system is None else "system prompt set")


@command("/json", "/json [on|off]", "answer in JSON (grammar-enforced)", choices=("on", "off"))
def _json(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if arg not in ("", "on", "off"):
        raise UsageError("usage: /json on|off")
    if arg:
        s.set_json(arg == "on")
    conv = s.conversation
    what = "on" if conv.json_mode else "off"
    ui.say(f"JSON mode {what}" + (" (with a schema)" if conv.json_mode and conv.json_schema else ""))


@command("/schema", "/schema FILE|JSON|off", "answer with JSON matching a schema",
         choices=("off",), path_arg=True)
def _schema(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /schema FILE|JSON|off")
    if arg == "off":
        s.set_schema(None)
        ui.say("schema off; JSON mode off")
    else:
        ui.say(f"schema from {s.set_schema(arg)}; JSON mode on")


@command("/tools", "/tools FILE|list|off", "Python functions the model may call",
         choices=("list", "off"), path_arg=True)
def _tools(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if arg in ("", "list"):
        if not s.tools:
            ui.say("no tools (load some with /tools FILE)")
        for tool in s.tools.values():
            params = ", ".join(tool.parameters.get("properties", {}))
            ui.say(f"{tool.name}({params}): {tool.description}")
        return
    if arg == "off":
        s.clear_tools()
        ui.say("tools off")
        return
    names = s.add_tools(arg)
    ui.say(f"tools: {', '.join(names)} (each call asks first; 'a' allows a tool for "
           "the rest of the session)")


@command("/set", "/set PARAM VALUE", "set a sampling parameter (" + ", ".join(PARAMS) + ")",
         choices=tuple(PARAMS))
def _set(s: ChatSession, ui: ChatUI, arg: str) -> None:
    name, _, value = arg.partition(" ")
    parse = PARAMS.get(name)
    if parse is None or not value.strip():
        raise UsageError(f"usage: /set PARAM VALUE, PARAM one of {', '.join(PARAMS)}")
    try:
        parsed = parse(value.strip())
    except ValueError as e:
        raise UsageError(f"/set {name}: {value.strip()!r} is not valid ({e})") from None
    s.set_param(name, parsed)
    ui.say(f"{name} = {parsed}")


@command("/params", "/params", "show the sampling parameters")
def _params(s: ChatSession, ui: ChatUI, arg: str) -> None:
    p = s.conversation.params
    for name in PARAMS:
        ui.say(f"{name} = {getattr(p, name)}")


@command("/reset", "/reset", "start a new conversation (same system prompt and settings)")
def _reset(s: ChatSession, ui: ChatUI, arg: str) -> None:
    old_id = s.reset()
    ui.say(f"new conversation {s.conversation.id} (the last one is saved as {old_id})")


@command("/undo", "/undo", "drop the last exchange")
def _undo(s: ChatSession, ui: ChatUI, arg: str) -> None:
    dropped = s.undo()
    ui.say(f"dropped the last exchange ({dropped} messages)" if dropped else "nothing to undo")


@command("/retry", "/retry", "regenerate the last reply")
def _retry(s: ChatSession, ui: ChatUI, arg: str) -> None:
    s.prepare_retry()
    ui.respond()


@command("/edit", "/edit", "edit the last message you sent, and send it again")
def _edit(s: ChatSession, ui: ChatUI, arg: str) -> None:
    last = s.conversation.last_user()
    if last is None:
        raise UsageError("nothing to edit")
    text = ui.ask("edit> ", default=last.content)
    if text is None or not text.strip():
        ui.say("edit cancelled")
        return
    s.conversation.undo()
    ui.send(text)


@command("/save", "/save [PATH]", "save the conversation (JSON; .md for a transcript)",
         path_arg=True)
def _save(s: ChatSession, ui: ChatUI, arg: str) -> None:
    path = Path(arg).expanduser() if arg else Path.cwd() / f"hermes-{s.conversation.id}.json"
    try:
        s.conversation.export(path)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    ui.say(f"saved to {path}")


@command("/load", "/load PATH", "load a saved conversation", path_arg=True)
def _load(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /load PATH")
    count = s.load_file(Path(arg).expanduser())
    ui.say(f"loaded {count} messages from {arg}")


@command("/copy", "/copy", "copy the last reply to the clipboard")
def _copy(s: ChatSession, ui: ChatUI, arg: str) -> None:
    reply = s.conversation.last_reply()
    if reply is None:
        raise UsageError("no reply to copy yet")
    how = copy_to_clipboard(reply.content, ui.write_raw)
    ui.say(f"copied {len(reply.content)} characters ({how})")


@command("/prompt", "/prompt", "show the exact ChatML the model sees")
def _prompt(s: ChatSession, ui: ChatUI, arg: str) -> None:
    ids = s.prompt_ids()
    ui.say(s.engine.detokenize(ids, special=True))
    ui.say(f"({len(ids)} tokens)", style="dim")


@command("/stats", "/stats", "timings and token counts of the last reply")
def _stats(s: ChatSession, ui: ChatUI, arg: str) -> None:
    from hermes_cli.core.stats import format_stats

    if s.last_result is None:
        ui.say("no reply yet")
        return
    ui.say(format_stats(s.last_result, s.engine))
    ui.say(f"this session: {s.total_tokens} tokens generated")


@command("/model", "/model", "what is loaded")
def _model(s: ChatSession, ui: ChatUI, arg: str) -> None:
    info = s.engine.info
    ui.say(f"{info.path} · context {info.n_ctx} (trained {info.n_ctx_train}) · "
           f"GPU layers {info.n_gpu_layers}{'' if info.gpu_offload_supported else ' (no GPU)'} · "
           f"threads {info.n_threads}")


@command("/exit", "/exit", "quit (Ctrl-D too)")
def _exit(s: ChatSession, ui: ChatUI, arg: str) -> bool:
    return True
