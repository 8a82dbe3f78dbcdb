"""`hermes chat`: the interactive loop over one loaded model.

The model stays loaded; every turn re-renders the conversation and the engine evaluates
only the tokens its KV cache does not already hold (replies keep their token ids). Ctrl-C
while the model writes stops the reply and keeps the part already written in the
conversation (`/undo` or `/retry` drop it); Ctrl-C at the prompt clears the line; Ctrl-D
or `/exit` quits. The conversation is saved after every change.

The chat itself (conversation, mode, tools, edits) is a core.session.ChatSession; this
class owns the keyboard and the screen, and is the ChatUI the slash-commands print through.
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
from hermes_cli.core.conversation import Conversation
from hermes_cli.core.session import ChatSession
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import GenerationResult
from hermes_cli.errors import ContextOverflowError, HermesError
from hermes_cli.prompt.template import PromptFormat

if TYPE_CHECKING:
    from hermes_cli.served.backend import ServedBackend

CONTEXT_WARNING = 0.8  # warn once the conversation fills this share of the context


class Repl:
    """The chat loop. `session` reads a line (prompt_toolkit's PromptSession, or a test
    double with the same `prompt()`); `console` is a rich Console."""

    def __init__(self, engine: Engine | None, conversation: Conversation, *, console: Any,
                 session: Any, plain: bool = False, autosave: bool = True,
                 served: ServedBackend | None = None) -> None:
        self.chat_session = ChatSession(engine, conversation, autosave=autosave, warn=self.error,
                                        served=served)
        self.console = console
        self.session = session
        self.plain = plain
        self._ended: int | None = None  # the signal that ends the chat, once one came

    # The session's state, for callers that hold the REPL.
    @property
    def engine(self) -> Engine | None:
        return self.chat_session.engine

    @property
    def conversation(self) -> Conversation:
        return self.chat_session.conversation

    @property
    def chat(self) -> PromptFormat | None:
        return self.chat_session.chat

    @property
    def last_result(self) -> GenerationResult | None:
        return self.chat_session.last_result

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        if not self.plain and self.console.is_terminal:
            import rich.markdown  # noqa: F401  (load it now, not inside the first reply)
        if self.engine is not None:
            where = f"{self.engine.info.path.name} · context {self.engine.n_ctx}"
        else:
            where = self.chat_session.describe()
        self.say(f"hermes chat · {where} · /help for commands · Ctrl-D to quit", style="dim")
        if self.conversation.messages:
            restored = self.chat_session.restore_state()
            self.say(f"resumed conversation {self.conversation.id} "
                     f"({len(self.conversation.messages)} messages"
                     + (f", {restored} tokens of saved state" if restored else "") + ")", style="dim")
        previous = self._catch_signals()
        try:
            while self._ended is None:
                try:
                    line = self.session.prompt("> ")
                except KeyboardInterrupt:
                    continue  # Ctrl-C at the prompt clears the line (a signal ends the loop)
                except EOFError:
                    break
                if not line.strip():
                    continue
                if line.lstrip().startswith("/"):
                    if self._guarded(commands.dispatch, self.chat_session, self, line.strip()):
                        break
                    continue
                self._guarded(self.send, line)
        finally:  # however the chat ends: what was said is saved, and the KV state
            self._restore_signals(previous)
            self.chat_session.save()
            self.chat_session.save_state()
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

    def send(self, text: str) -> None:
        from hermes_cli.core.attachments import describe

        content, files = self.chat_session.compose(text)  # @path and /read files, fenced
        if files:
            size = ""
            if self.engine is not None:
                size = f" · prompt {self.chat_session.prompt_tokens(content):,} of {self.engine.n_ctx:,} tokens"
            self.say(f"with {describe(files)}{size}", style="dim")
        self.conversation.add("user", content)
        self.chat_session.save()
        self.respond()

    def respond(self) -> None:
        """Generate the reply to the conversation as it stands (it ends with a user turn),
        in whatever mode the chat is in. A turn that fails says so in one line; the chat,
        and what was saved, go on."""
        from hermes_cli.chat.reply_view import ReplyView
        from hermes_cli.core.reply import stream

        s = self.chat_session
        conv = s.conversation
        mode = s.reply_mode()
        system = mode.system_prompt(conv.system)
        sent = conv.with_system(system)
        if self.engine is not None and self.chat is not None:  # a served engine fits its own
            reserve = min(conv.params.max_tokens or 1024, self.engine.n_ctx // 4)
            try:
                sent, left_out = conv.window(self.chat, system, self.engine.n_ctx, reserve)
            except ContextOverflowError as e:
                conv.undo()
                self.error(f"{e}; the message was not sent")
                return
            if left_out:
                self.say(f"context full: the model sees the newest turns; the {left_out} oldest messages "
                         "are left out of its window (the system prompt is kept; the saved chat keeps them)",
                         style="yellow")
        logic = mode.logic(sent, conv.params, approve=self._approve)
        try:
            with keys_not_echoed(sys.stdin):  # typed-ahead keys wait for the prompt unseen
                reply = ReplyView(self.console, plain=self.plain).show(stream(s.backend, logic))
        except KeyboardInterrupt:
            self.say("(stopped)", style="yellow")
            return
        conv.messages.extend(reply.messages)
        s.record(reply.last, reply.completion_tokens)
        s.save()
        if reply.stopped == "interrupted":
            self.say("(stopped; the partial reply is kept: /retry regenerates it, /undo drops "
                     "the exchange)", style="yellow")
        elif reply.last.finish_reason == "context":
            self.say("(the reply filled the context and was cut)", style="yellow")
        elif reply.stopped == "round_limit":
            self.say(f"(stopped after {reply.rounds} tool rounds; the model still wanted tools)",
                     style="yellow")
        self.footer(reply.last)

    def _approve(self, call: Any) -> bool:
        s = self.chat_session
        if s.auto_approve or call.name in s.always_allowed:
            return True
        args = json.dumps(call.arguments, ensure_ascii=False)
        answer = self.ask(f"run {call.name}({args})? [y]es/[n]o/[a]lways: ")
        if answer is None:
            return False
        answer = answer.strip().lower()
        if answer in ("a", "always"):
            s.always_allowed.add(call.name)
            return True
        return answer in ("y", "yes")

    # -- output (the ChatUI protocol) -------------------------------------------------

    def show_json(self, value: Any) -> None:
        if self.plain or not self.console.is_terminal:
            self.console.file.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
            return
        from rich.json import JSON

        self.console.print(JSON(visible(json.dumps(value, ensure_ascii=False))))

    def say(self, text: str, *, style: str | None = None) -> None:
        if self.console.is_terminal:  # errors and notes can quote model or file text
            text = visible(text)
        if self.plain:
            self.console.file.write(text + "\n")
            self.console.file.flush()
        else:
            self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        self.say(f"error: {text}", style="bold red")

    def write_raw(self, text: str) -> None:
        self.console.file.write(text)
        self.console.file.flush()

    def ask(self, prompt: str, default: str = "") -> str | None:
        try:
            return str(self.session.prompt(prompt, default=default))
        except (KeyboardInterrupt, EOFError):
            return None

    def footer(self, result: GenerationResult) -> None:
        if self.engine is None:
            self.say(f"{result.completion_tokens} tokens · {result.tokens_per_second:.1f} tok/s · "
                     f"first token after {result.prompt_seconds:.2f} s", style="dim")
            return
        used = result.prompt_tokens + result.completion_tokens
        n_ctx = self.engine.n_ctx
        self.say(f"{result.completion_tokens} tokens · {result.tokens_per_second:.1f} tok/s · "
                 f"context {used}/{n_ctx}", style="dim")
        if used > CONTEXT_WARNING * n_ctx:
            self.say(f"warning: the context is {100 * used // n_ctx}% full; the oldest turns "
                     "will be dropped to make room (/reset starts afresh)", style="yellow")


def make_session(history_file: Path) -> Any:
    """A prompt_toolkit session: persistent history, slash-command completion, Emacs
    keys; Enter sends, Esc Enter (Alt-Enter) inserts a newline; pasted text keeps its
    newlines. Not Ctrl-J: a line typed ahead while a reply streams passes through the
    terminal's cooked mode, where Enter arrives as Ctrl-J, and must still be sent."""
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

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    history_file.parent.mkdir(parents=True, exist_ok=True)
    return PromptSession(history=LenientHistory(str(history_file)), completer=slash_completer(),
                         key_bindings=bindings, complete_while_typing=True)
