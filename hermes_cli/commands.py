"""The REPL's slash-commands: one table, so /help, completion and the README agree.

Each handler takes the Repl and the argument text. Bad arguments raise UsageError: the
REPL prints one line and the conversation is untouched.
"""

from __future__ import annotations

import base64
import dataclasses
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_cli.conversation import Conversation, new_id
from hermes_cli.errors import UsageError

if TYPE_CHECKING:
    from hermes_cli.repl import Repl


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    handler: Callable[[Repl, str], bool | None]
    choices: tuple[str, ...] = ()  # argument completions
    path_arg: bool = False  # complete file paths


COMMANDS: dict[str, Command] = {}


def command(name: str, usage: str, help: str, *, choices: Iterable[str] = (),
            path_arg: bool = False) -> Callable[[Callable[[Repl, str], bool | None]], Callable[[Repl, str], bool | None]]:
    def register(fn: Callable[[Repl, str], bool | None]) -> Callable[[Repl, str], bool | None]:
        COMMANDS[name] = Command(name, usage, help, fn, tuple(choices), path_arg)
        return fn

    return register


def dispatch(repl: Repl, line: str) -> bool:
    """Run one slash-command; True means quit."""
    name, _, arg = line.partition(" ")
    cmd = COMMANDS.get(name.lower())
    if cmd is None:
        raise UsageError(f"unknown command {name}; /help lists them")
    return bool(cmd.handler(repl, arg.strip()))


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
def _help(repl: Repl, arg: str) -> None:
    width = max(len(c.usage) for c in COMMANDS.values())
    for c in COMMANDS.values():
        repl.say(f"{c.usage:<{width}}  {c.help}")
    repl.say("Enter sends · Esc Enter (Alt-Enter): new line · Ctrl-C stops a reply · Ctrl-D quits",
             style="dim")


@command("/system", "/system [TEXT|clear]", "show, set or clear the system prompt",
         choices=("clear",))
def _system(repl: Repl, arg: str) -> None:
    conv = repl.conversation
    if not arg:
        repl.say(conv.system or "(no system prompt)")
        return
    conv.system = None if arg == "clear" else arg
    repl.save()
    repl.say("system prompt cleared" if conv.system is None else "system prompt set")


@command("/json", "/json [on|off]", "answer in JSON (grammar-enforced)", choices=("on", "off"))
def _json(repl: Repl, arg: str) -> None:
    conv = repl.conversation
    if arg not in ("", "on", "off"):
        raise UsageError("usage: /json on|off")
    if arg:
        conv.json_mode = arg == "on"
        repl.save()
    what = "on" if conv.json_mode else "off"
    repl.say(f"JSON mode {what}" + (" (with a schema)" if conv.json_mode and conv.json_schema else ""))


@command("/schema", "/schema FILE|JSON|off", "answer with JSON matching a schema",
         choices=("off",), path_arg=True)
def _schema(repl: Repl, arg: str) -> None:
    from hermes_cli.jsonmode import load_schema

    conv = repl.conversation
    if not arg:
        raise UsageError("usage: /schema FILE|JSON|off")
    if arg == "off":
        conv.json_schema, conv.json_mode = None, False
        repl.say("schema off; JSON mode off")
    else:
        mode = load_schema(arg)
        mode.grammar_text()  # refuse a schema llama.cpp cannot turn into a grammar now
        conv.json_schema, conv.json_mode = mode.schema, True
        repl.say(f"schema from {mode.source}; JSON mode on")
    repl.save()


@command("/tools", "/tools FILE|list|off", "Python functions the model may call",
         choices=("list", "off"), path_arg=True)
def _tools(repl: Repl, arg: str) -> None:
    from hermes_cli.tools import check_unique, load_tools_file

    if arg in ("", "list"):
        if not repl.tools:
            repl.say("no tools (load some with /tools FILE)")
        for tool in repl.tools.values():
            params = ", ".join(tool.parameters.get("properties", {}))
            repl.say(f"{tool.name}({params}): {tool.description}")
        return
    if arg == "off":
        repl.tools, repl.always_allowed = {}, set()
        repl.say("tools off")
        return
    loaded = load_tools_file(arg)
    repl.tools = check_unique(list(repl.tools.values()) + loaded)
    repl.say(f"tools: {', '.join(repl.tools)} (each call asks first; 'a' allows a tool for "
             "the rest of the session)")


@command("/set", "/set PARAM VALUE", "set a sampling parameter (" + ", ".join(PARAMS) + ")",
         choices=tuple(PARAMS))
def _set(repl: Repl, arg: str) -> None:
    name, _, value = arg.partition(" ")
    parse = PARAMS.get(name)
    if parse is None or not value.strip():
        raise UsageError(f"usage: /set PARAM VALUE, PARAM one of {', '.join(PARAMS)}")
    try:
        parsed = parse(value.strip())
    except ValueError as e:
        raise UsageError(f"/set {name}: {value.strip()!r} is not valid ({e})") from None
    conv = repl.conversation
    conv.params = dataclasses.replace(conv.params, **{name: parsed})
    repl.save()
    repl.say(f"{name} = {parsed}")


@command("/params", "/params", "show the sampling parameters")
def _params(repl: Repl, arg: str) -> None:
    p = repl.conversation.params
    for name in PARAMS:
        repl.say(f"{name} = {getattr(p, name)}")


@command("/reset", "/reset", "start a new conversation (same system prompt and settings)")
def _reset(repl: Repl, arg: str) -> None:
    old = repl.conversation
    repl.conversation = Conversation(model=old.model, system=old.system, params=old.params,
                                     json_schema=old.json_schema, json_mode=old.json_mode)
    repl.say(f"new conversation {repl.conversation.id} (the last one is saved as {old.id})")


@command("/undo", "/undo", "drop the last exchange")
def _undo(repl: Repl, arg: str) -> None:
    dropped = repl.conversation.undo()
    if not dropped:
        repl.say("nothing to undo")
        return
    repl.save()
    repl.say(f"dropped the last exchange ({len(dropped)} messages)")


@command("/retry", "/retry", "regenerate the last reply")
def _retry(repl: Repl, arg: str) -> None:
    if repl.conversation.drop_reply() is None:
        raise UsageError("nothing to retry")
    repl.respond()


@command("/edit", "/edit", "edit the last message you sent, and send it again")
def _edit(repl: Repl, arg: str) -> None:
    last = repl.conversation.last_user()
    if last is None:
        raise UsageError("nothing to edit")
    try:
        text = repl.session.prompt("edit> ", default=last.content)
    except (KeyboardInterrupt, EOFError):
        repl.say("edit cancelled")
        return
    if not text.strip():
        repl.say("edit cancelled")
        return
    repl.conversation.undo()
    repl.send(text)


@command("/save", "/save [PATH]", "save the conversation (JSON; .md for a transcript)",
         path_arg=True)
def _save(repl: Repl, arg: str) -> None:
    path = Path(arg).expanduser() if arg else Path.cwd() / f"hermes-{repl.conversation.id}.json"
    try:
        repl.conversation.export(path)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    repl.say(f"saved to {path}")


@command("/load", "/load PATH", "load a saved conversation", path_arg=True)
def _load(repl: Repl, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /load PATH")
    loaded = Conversation.load(Path(arg).expanduser())
    loaded.id = new_id()  # a copy: the file it came from is not overwritten
    repl.conversation = loaded
    repl.save()
    repl.say(f"loaded {len(loaded.messages)} messages from {arg}")


@command("/copy", "/copy", "copy the last reply to the clipboard")
def _copy(repl: Repl, arg: str) -> None:
    reply = repl.conversation.last_reply()
    if reply is None:
        raise UsageError("no reply to copy yet")
    how = copy_to_clipboard(reply.content, repl.console.file)
    repl.say(f"copied {len(reply.content)} characters ({how})")


def copy_to_clipboard(text: str, terminal: Any) -> str:
    """A clipboard tool when one exists; else OSC 52, which most terminals (and tmux,
    over SSH too) turn into a clipboard write."""
    for cmd in (["pbcopy"], ["wl-copy"], ["xclip", "-selection", "clipboard"],
                ["xsel", "--clipboard", "--input"], ["clip.exe"]):
        if shutil.which(cmd[0]):
            try:
                subprocess.run(cmd, input=text.encode(), check=True, timeout=5,
                               capture_output=True)
                return cmd[0]
            except (OSError, subprocess.SubprocessError):
                continue
    terminal.write("\x1b]52;c;" + base64.b64encode(text.encode()).decode() + "\x07")
    terminal.flush()
    return "OSC 52"


@command("/prompt", "/prompt", "show the exact ChatML the model sees")
def _prompt(repl: Repl, arg: str) -> None:
    messages = repl.conversation.with_system(repl.effective_system())
    ids = repl.chat.render(messages)
    text = repl.engine.detokenize(ids, special=True)
    repl.console.file.write(text + "\n")
    repl.say(f"({len(ids)} tokens)", style="dim")


@command("/stats", "/stats", "timings and token counts of the last reply")
def _stats(repl: Repl, arg: str) -> None:
    from hermes_cli.ask import format_stats

    if repl.last_result is None:
        repl.say("no reply yet")
        return
    repl.say(format_stats(repl.last_result, repl.engine))
    repl.say(f"this session: {repl.total_tokens} tokens generated")


@command("/model", "/model", "what is loaded")
def _model(repl: Repl, arg: str) -> None:
    info = repl.engine.info
    repl.say(f"{info.path} · context {info.n_ctx} (trained {info.n_ctx_train}) · "
             f"GPU layers {info.n_gpu_layers}{'' if info.gpu_offload_supported else ' (no GPU)'} · "
             f"threads {info.n_threads}")


@command("/exit", "/exit", "quit (Ctrl-D too)")
def _exit(repl: Repl, arg: str) -> bool:
    return True


def slash_completer() -> Any:
    """A prompt_toolkit completer: command names, then their arguments or file paths.
    (Built in a function so prompt_toolkit is imported only when the REPL starts.)"""
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document

    paths = PathCompleter(expanduser=True)

    class SlashCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            text = document.text_before_cursor
            if not text.startswith("/"):
                return
            if " " not in text:
                for name in COMMANDS:
                    if name.startswith(text):
                        yield Completion(name, start_position=-len(text))
                return
            name, _, arg = text.partition(" ")
            cmd = COMMANDS.get(name)
            if cmd is None or (" " in arg and name != "/set"):
                return
            for choice in cmd.choices:
                if choice.startswith(arg):
                    yield Completion(choice, start_position=-len(arg))
            if cmd.path_arg:
                yield from paths.get_completions(Document(arg, len(arg)), complete_event)

    return SlashCompleter()
