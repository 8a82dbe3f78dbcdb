"""Tab completion in the chat: command names, then their arguments or file paths."""

from __future__ import annotations

from typing import Any

from hermes_cli.chat.commands import COMMANDS


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
                word = text.rsplit(None, 1)[-1] if text and not text[-1].isspace() else ""
                if word.startswith("@"):  # `@path` attaches a file: complete the path
                    yield from paths.get_completions(Document(word[1:], len(word) - 1), complete_event)
                return
            if " " not in text:
                for name in COMMANDS:
                    if name.startswith(text):
                        yield Completion(name, start_position=-len(text))
                return
            name, _, arg = text.partition(" ")
            cmd = COMMANDS.get(name)
            if cmd is not None and name == "/read":  # several paths: complete the last one
                arg = arg.rsplit(" ", 1)[-1]
            elif cmd is None or (" " in arg and name != "/set"):
                return
            for choice in cmd.choices:
                if choice.startswith(arg):
                    yield Completion(choice, start_position=-len(arg))
            if cmd.path_arg:
                yield from paths.get_completions(Document(arg, len(arg)), complete_event)

    return SlashCompleter()
