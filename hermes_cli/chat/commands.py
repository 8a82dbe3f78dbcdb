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
from hermes_cli.core.chat_session import ChatSession
from hermes_cli.engine.params import SAMPLING_LIMITS
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


def _parse_setting(name: str, text: str) -> Any:
    """A /set value as the table's type (engine/params.py: SAMPLING_LIMITS); the range is
    checked by the session, against the same table as the options and files."""
    kind, _low, _high, nullable = SAMPLING_LIMITS[name]
    if nullable and text.lower() in ("none", "off", "default"):
        return None
    if kind is bool:
        if text.lower() not in ("on", "off", "true", "false", "yes", "no"):
            raise ValueError("say on or off")
        return text.lower() in ("on", "true", "yes")
    return int(text) if kind is int else float(text)


PARAMS = tuple(SAMPLING_LIMITS)


@command("/help", "/help", "list the commands")
def _help(s: ChatSession, ui: ChatUI, arg: str) -> None:
    width = max(len(c.usage) for c in COMMANDS.values())
    for c in COMMANDS.values():
        ui.say(f"{c.usage:<{width}}  {c.help}", indent=width + 2)
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
        tools = s.all_tools()
        if not tools:
            ui.say("no tools (load some with /tools FILE, or start chat with --mcp)")
        for tool in tools.values():
            params = ", ".join(tool.parameters.get("properties", {}))
            where = f" [MCP {tool.server}]" if tool.server else ""
            ui.say(f"{tool.name}({params}){where}: {tool.description}")
        return
    if arg == "off":
        s.clear_tools()
        ui.say("tools off")
        return
    names = s.add_tools(arg)
    ui.say(f"tools: {', '.join(names)} (each call asks first; 'a' allows a tool for "
           "the rest of the session)")


@command("/mcp", "/mcp [restart NAME]", "the MCP servers: state and tools; restart one",
         choices=("restart",))
def _mcp(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if s.mcp is None:
        ui.say("no MCP servers (start chat with --mcp 'COMMAND ARGS…', or add [mcp.servers.NAME] "
               "to the config file)")
        return
    action, _, name = arg.partition(" ")
    if action == "restart" and name.strip():
        server = s.mcp.restart(name.strip())
        ui.say(f"{server.name}: {server.state}" + (f" ({server.error})" if server.error else "")
               + (f", {len(server.tools)} tools" if server.state == "ready" else ""))
        return
    if arg:
        raise UsageError("usage: /mcp, or /mcp restart NAME")
    for st in s.mcp.status():
        ui.say(f"{st.name} [{st.state}] {st.where}" + (f": {st.error}" if st.error else ""))
        if st.tools:
            ui.say("  tools: " + ", ".join(st.tools), style="dim")


@command("/set", "/set PARAM VALUE", "set a sampling parameter (" + ", ".join(PARAMS) + ")",
         choices=PARAMS)
def _set(s: ChatSession, ui: ChatUI, arg: str) -> None:
    name, _, value = arg.partition(" ")
    if name not in PARAMS or not value.strip():
        raise UsageError(f"usage: /set PARAM VALUE, PARAM one of {', '.join(PARAMS)}")
    try:
        parsed = _parse_setting(name, value.strip())
    except (ValueError, OverflowError) as e:
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


@command("/continue", "/continue", "go on with the last reply (cut by --max-tokens or Ctrl-C) where it stopped")
def _continue(s: ChatSession, ui: ChatUI, arg: str) -> None:
    ui.show_turn(s.continue_reply())


@command("/compact", "/compact", "summarize the older turns into a note the model sees in their place")
def _compact(s: ChatSession, ui: ChatUI, arg: str) -> None:
    from hermes_cli.core.compaction import compact

    ui.say(compact(s).line())


@command("/undo", "/undo", "drop the last exchange")
def _undo(s: ChatSession, ui: ChatUI, arg: str) -> None:
    dropped = s.undo()
    ui.say(f"dropped the last exchange ({dropped} messages)" if dropped else "nothing to undo")


@command("/retry", "/retry", "regenerate the last reply")
def _retry(s: ChatSession, ui: ChatUI, arg: str) -> None:
    ui.show_turn(s.retry())


@command("/edit", "/edit [N]", "edit your last message, or user message N, and continue on a new branch")
def _edit(s: ChatSession, ui: ChatUI, arg: str) -> None:
    from hermes_cli.core.branches import user_turns

    turns = user_turns(s.conversation)
    if not turns:
        raise UsageError("nothing to edit")
    try:
        n = int(arg) if arg else len(turns)
    except ValueError:
        raise UsageError("usage: /edit [N] (N counts your messages from 1; /branches shows them)") from None
    if not 1 <= n <= len(turns):
        raise UsageError(f"there is no message {n}: this branch has {len(turns)} of yours")
    text = ui.ask("edit> ", default=s.conversation.messages[turns[n - 1]].content)
    if text is None or not text.strip():
        ui.say("edit cancelled")
        return
    ui.show_turn(s.edit(n, text))


@command("/fork", "/fork", "start a new branch here (the current one is kept)")
def _fork(s: ChatSession, ui: ChatUI, arg: str) -> None:
    k = s.fork()
    ui.say(f"branch {k}: a copy of the conversation so far; /branch {s.conversation.branches[k].parent} "
           "goes back")


@command("/branches", "/branches", "list the conversation's branches")
def _branches(s: ChatSession, ui: ChatUI, arg: str) -> None:
    from hermes_cli.core.branches import summaries

    for b in summaries(s.conversation):
        origin = "" if b.parent is None else f" · from branch {b.parent}, after message {b.at}"  # as export says
        ui.say(f"{'*' if b.current else ' '} {b.index}: {b.messages} messages{origin} · {b.last_user!r}")


@command("/branch", "/branch K", "switch to branch K (the shared start stays in the KV cache)")
def _branch(s: ChatSession, ui: ChatUI, arg: str) -> None:
    try:
        k = int(arg)
    except ValueError:
        raise UsageError("usage: /branch K (/branches lists them)") from None
    s.switch_branch(k)
    last = s.conversation.last_reply()
    ui.say(f"on branch {k}: {len(s.conversation.messages)} messages"
           + (f"; last reply: {last.content.strip()[:80]!r}" if last else ""))


@command("/read", "/read PATH… | URL | !COMMAND", "attach files (globs too), a page, or a command's output "
         "(asked first) to your next message", path_arg=True)
def _read(s: ChatSession, ui: ChatUI, arg: str) -> None:
    import shlex

    try:
        specs = [arg.strip()] if arg.strip().startswith("!") else shlex.split(arg)  # a command: the whole line
    except ValueError as e:
        raise UsageError(f"/read: {e}") from None
    from hermes_cli.core.attachments import describe

    sized = s.attach(specs)
    used = s.prompt_tokens()
    total = sum(f.tokens or 0 for f in s.pending_files)
    room = s.room(None if used is None else used + total)
    ui.say(f"attached {describe(sized)}{room}; they go with your next message")


@command("/role", "/role [NAME]", "apply a role from the config file (no NAME: list them)")
def _role(s: ChatSession, ui: ChatUI, arg: str) -> None:
    config = s.settings_file()
    if not arg:
        if not config.roles:
            ui.say(f"no roles: add [roles.NAME] tables to {config.path or 'the config file'} "
                   "(hermes config edit)")
        for name, role in config.roles.items():
            mark = "*" if name == s.role else " "
            ui.say(f"{mark} {name}: {(role.system or '').strip().splitlines()[0][:70] if role.system else ''}")
        return
    from hermes_cli.core.chat_roles import apply_role

    changed = apply_role(s, config, arg)
    ui.say(f"role {arg}: " + ("; ".join(changed) if changed else "nothing to change"))


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


@command("/copy", "/copy [code]", "copy the last reply (code: its first fenced code block) to the clipboard",
         choices=("code",))
def _copy(s: ChatSession, ui: ChatUI, arg: str) -> None:
    from hermes_cli.core.extract import first_code_block

    reply = s.conversation.last_reply()
    if reply is None:
        raise UsageError("no reply to copy yet")
    if arg not in ("", "code"):
        raise UsageError("usage: /copy, or /copy code")
    text = reply.content if not arg else first_code_block(reply.content)
    if text is None:
        raise UsageError("the last reply has no fenced code block")
    how = copy_to_clipboard(text, ui.write_raw)
    ui.say(f"copied {len(text)} characters{' of code' if arg else ''} ({how})")


@command("/prompt", "/prompt", "show the exact prompt the model sees")
def _prompt(s: ChatSession, ui: ChatUI, arg: str) -> None:
    ui.say(s.prompt_text())


@command("/choices", "/choices [A,B,…|off]", "decision mode: each message answered with one label and "
         "every label's probability", choices=("off",))
def _choices(s: ChatSession, ui: ChatUI, arg: str) -> None:
    from hermes_cli.core.decision import parse_choices

    if arg == "off":
        s.choices = None
        ui.say("decision mode off: replies are written again")
    elif arg:
        s.choices = parse_choices(arg, "/choices")
        ui.say("decision mode: each message is answered with one of " + ", ".join(s.choices))
    else:
        ui.say("decision mode: " + (", ".join(s.choices) if s.choices else "off"))


@command("/think", "/think [on|off|default]", "show the last reply's thinking whole; on/off: a reasoning "
         "model thinks before answering, or answers at once", choices=("on", "off", "default"))
def _think(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if not arg:
        ui.say(s.last_reasoning or "the last reply had no thinking", style="dim")
        return
    choices: dict[str, bool | None] = {"on": True, "off": False, "default": None}
    if arg.lower() not in choices:
        raise UsageError("usage: /think [on|off|default]")
    choice = choices[arg.lower()]
    s.backend.think(choice)
    said: dict[bool | None, str] = {True: "thinking on: the model thinks before it answers",
                                    False: "thinking off: the model answers at once",
                                    None: "thinking: the model's default"}
    ui.say(said[choice])


@command("/stats", "/stats", "timings and token counts of the last reply")
def _stats(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if s.last_result is None:
        ui.say("no reply yet")
        return
    from hermes_cli.core import figures

    ui.say(figures.stats_line(s.last_result, s.backend.facts()))
    ui.say(f"this session: {s.total_tokens} tokens generated")


@command("/model", "/model [REF]", "what is loaded; REF loads another model and keeps the conversation",
         path_arg=True)
def _model(s: ChatSession, ui: ChatUI, arg: str) -> None:
    if not arg:
        ui.say(s.describe())
        return
    name = s.switch_model(arg)
    ui.say(f"loaded {name}; the conversation ({len(s.conversation.messages)} messages) goes on with it")


@command("/exit", "/exit", "quit (Ctrl-D too)")
def _exit(s: ChatSession, ui: ChatUI, arg: str) -> bool:
    return True
