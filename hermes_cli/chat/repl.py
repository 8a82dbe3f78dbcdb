"""`hermes chat`: the interactive loop over one loaded model.

The model stays loaded; every turn re-renders the conversation and the engine evaluates
only the tokens its KV cache does not already hold (replies keep their token ids). Ctrl-C
while the model writes stops the reply and keeps the part already written in the
conversation (`/undo` or `/retry` drop it); Ctrl-C at the prompt clears the line; Ctrl-D
or `/exit` quits. The conversation is saved after every change.

The chat itself (conversation, mode, tools, edits, and each turn end to end) is a
core.chat_session.ChatSession; this class owns the keyboard and the screen: it reads lines,
shows a turn's events, and is the ChatUI the slash-commands print through.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_cli import env
from hermes_cli.chat import commands
from hermes_cli.chat.streaming_terminal import keys_not_echoed
from hermes_cli.chat.visible import visible
from hermes_cli.core import figures
from hermes_cli.core.chat_session import ChatSession
from hermes_cli.core.conversation import Conversation
from hermes_cli.core.turn import Turn
from hermes_cli.engine.params import GenerationResult
from hermes_cli.errors import HermesError

if TYPE_CHECKING:
    from hermes_cli.chat.reply_view import ReplyView
    from hermes_cli.prompt.tool_calls import ToolCall


_ANSWERS = frozenset({"y", "yes", "n", "no", "a", "always", ""})  # "": Enter alone, no


class Repl:
    """The chat loop over a ChatSession. `keyboard` reads a line (prompt_toolkit's
    PromptSession, or a test double with the same `prompt()`); `console` is a rich
    Console. `confirm` and `error` are what the chat session is given to ask and warn with.
    `keyboard_is_terminal`: whether `keyboard` reads what a person types (stdin is a
    terminal, or a test types for one); approvals are asked there, else on the
    controlling terminal (chat/tty.py), never read from piped input."""

    def __init__(self, *, console: Any, keyboard: Any, plain: bool = False,
                 keyboard_is_terminal: bool | None = None) -> None:
        self.console = console
        self.keyboard = keyboard
        self.plain = plain
        if keyboard_is_terminal is None:
            keyboard_is_terminal = sys.stdin is not None and sys.stdin.isatty()
        self.keyboard_is_terminal = keyboard_is_terminal
        self._chat: ChatSession | None = None
        self._ended: int | None = None  # the signal that ends the chat, once one came
        self._view: ReplyView | None = None  # the reply being shown

    @property
    def chat_session(self) -> ChatSession:
        assert self._chat is not None, "the REPL shows a chat only inside run()"
        return self._chat

    @property
    def conversation(self) -> Conversation:
        return self.chat_session.conversation

    @property
    def last_result(self) -> GenerationResult | None:
        return self.chat_session.last_result

    # -- the loop ---------------------------------------------------------------------

    def run(self, chat: ChatSession) -> int:
        """Read and answer lines until Ctrl-D, /exit or a signal; the exit status."""
        self._chat = chat
        if not self.plain and self.console.is_terminal:
            import rich.markdown  # noqa: F401  (load it now, not inside the first reply)
        self.say(f"hermes chat · {figures.title(chat.backend.facts())} · /help for commands · Ctrl-D to quit",
                 style="dim")
        if self.conversation.messages:
            restored = chat.restore_state()
            self.say(f"resumed conversation {self.conversation.id} "
                     f"({len(self.conversation.messages)} messages"
                     + (f", {restored} tokens of saved state" if restored else "") + ")", style="dim")
        previous = self._catch_signals()
        try:
            while self._ended is None:
                try:
                    line = self.keyboard.prompt("> ")
                except KeyboardInterrupt:
                    continue  # Ctrl-C at the prompt clears the line (a signal ends the loop)
                except EOFError:
                    break
                if not line.strip():
                    continue
                if line.lstrip().startswith("/"):
                    if self._guarded(commands.dispatch, chat, self, line.strip()):
                        break
                    continue
                self._guarded(lambda text: self.show_turn(chat.send(text)), line)
        finally:  # however the chat ends: what was said is saved, and the KV state
            self._restore_signals(previous)
            chat.save()
            chat.save_state()
        return 128 + self._ended if self._ended is not None else 0

    def _guarded(self, action: Any, *args: Any) -> Any:
        """Run one command or turn; any failure is one line and the chat goes on."""
        try:
            return action(*args)
        except HermesError as e:
            self.error(str(e))
        except KeyboardInterrupt:
            self.say("(stopped)", style="yellow")
        except Exception as e:  # a bug, or llama.cpp failing: say so, keep the chat
            if env.debug():
                raise
            self.error(f"{type(e).__name__}: {e} (set HERMES_DEBUG=1 to see the traceback)")
        return None

    def _catch_signals(self) -> dict[int, Any]:
        """SIGTERM and SIGHUP stop a streaming reply as Ctrl-C does (the partial reply is
        kept), then end the chat, which saves it and its KV state."""
        import signal

        self._ended = None

        def ended(signum: int, _frame: Any) -> None:
            self._ended = signum
            raise KeyboardInterrupt

        previous = {}
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None:
                try:
                    previous[signum] = signal.signal(signum, ended)
                except ValueError:  # not the main thread (tests): no handlers
                    pass
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        import signal

        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def show_turn(self, turn: Turn) -> None:
        """Show one turn of the session (its reply is recorded by the session), then what
        became of it and the footer. Keys typed meanwhile wait, unseen, for the prompt."""
        from hermes_cli.chat.reply_view import ReplyView

        self._view = ReplyView(self.console, plain=self.plain)
        try:
            with keys_not_echoed(sys.stdin):
                reply = self._view.show(turn)
        finally:
            self._view = None
        if reply.stopped == "interrupted":
            self.say("(stopped; the partial reply is kept: /retry regenerates it, /undo drops "
                     "the exchange)", style="yellow")
        elif reply.last.finish_reason == "context":
            self.say("(the reply filled the context and was cut)", style="yellow")
        elif reply.stopped == "round_limit":
            self.say(f"(stopped after {reply.rounds} tool rounds; the model still wanted tools)",
                     style="yellow")
        closed = figures.closed_note(reply.last)
        if closed:
            self.say(f"({closed.removeprefix('note: ')})", style="yellow")
        line, warning = figures.footer(reply.last, self.chat_session.backend.facts())
        self.say(line, style="dim")
        if warning:
            self.say(warning, style="yellow")

    def confirm(self, call: ToolCall) -> str | None:
        """The session asks before a tool runs: y, n or a(lways), typed on the terminal.
        The question names the call whole, unless the line right above it (the call as
        the model made it) already shows this call whole: the user sees what would run,
        once."""
        from hermes_cli.chat.tty import ask_terminal, declined_note

        args = json.dumps(call.arguments, ensure_ascii=False)
        shown = self._view is not None and self._view.call_on_screen == (call.name, args)
        question = f"run {call.name}{'' if shown else f'({args})'}? [y]es/[n]o/[a]lways: "
        while True:  # an answer that is none of these is asked again, not taken as "no"
            answer = self.ask(question) if self.keyboard_is_terminal else ask_terminal(question)
            if answer is None:
                if not self.keyboard_is_terminal:
                    self.error(declined_note(call.name))
                return None
            if answer.strip().lower() in _ANSWERS:
                return answer
            self.say("answer y (run it), n (do not) or a (always, for this tool in this chat)", style="yellow")

    # -- output (the ChatUI protocol) -------------------------------------------------

    def show_json(self, value: Any) -> None:
        if self.plain or not self.console.is_terminal:
            self.console.file.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
            return
        from rich.json import JSON

        self.console.print(JSON(visible(json.dumps(value, ensure_ascii=False))))

    def say(self, text: str, *, style: str | None = None, indent: int = 0) -> None:
        """Wrapped at words to the screen (the terminal's own wrapping cut words in two);
        piped or plain, as it is."""
        if self.console.is_terminal:  # errors and notes can quote model or file text
            text = visible(text)
        if self.plain or not self.console.is_terminal:
            self.console.file.write(text + "\n")
            self.console.file.flush()
            return
        import textwrap

        width = max(20, self.console.width)
        lines = [wrapped for line in text.split("\n") for wrapped in (textwrap.wrap(
            line, width, subsequent_indent=" " * min(indent, width // 2), break_long_words=True,
            break_on_hyphens=False, replace_whitespace=False, drop_whitespace=True) or [""])]
        self.console.print("\n".join(lines), style=style, markup=False, highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        self.say(f"error: {text}", style="bold red")

    def write_raw(self, text: str) -> None:
        self.console.file.write(text)
        self.console.file.flush()

    def ask(self, prompt: str, default: str = "") -> str | None:
        try:
            return str(self.keyboard.prompt(prompt, default=default))
        except (KeyboardInterrupt, EOFError):
            return None


def make_keyboard(history_file: Path) -> Any:
    """The line reader (prompt_toolkit's PromptSession; here "session" means a chat):
    persistent history, slash-command completion, Emacs keys; Enter sends, Esc Enter
    (Alt-Enter) inserts a newline; pasted text keeps its newlines. Not Ctrl-J: a line
    typed ahead while a reply streams passes through the terminal's cooked mode, where
    Enter arrives as Ctrl-J, and must still be sent."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    from hermes_cli.chat.completion import slash_completer

    class LenientHistory(FileHistory):
        """Input history is a convenience: a full disk must not stop the chat."""

        def store_string(self, string: str) -> None:
            try:
                super().store_string(string)
            except OSError:
                pass

    bindings = KeyBindings()

    @bindings.add("tab")
    def _tab(event: Any) -> None:
        """One match: take it and close the menu (the menu typing opened stayed open, with
        the match only selected). Several: step through them, as prompt_toolkit does."""
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and len(state.completions) == 1:
            buffer.apply_completion(state.completions[0])
        elif state is not None:
            buffer.complete_next()
        else:
            buffer.start_completion(insert_common_part=True)

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    history_file.parent.mkdir(parents=True, exist_ok=True)
    return PromptSession(history=LenientHistory(str(history_file)), completer=slash_completer(),
                         key_bindings=bindings, complete_while_typing=True)
