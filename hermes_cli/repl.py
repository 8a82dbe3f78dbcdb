"""`hermes chat`: the interactive loop over one loaded model.

The model stays loaded; every turn re-renders the conversation and the engine evaluates
only the tokens its KV cache does not already hold (replies keep their token ids). Ctrl-C
while the model writes stops the reply and keeps the part already written in the
conversation (`/undo` or `/retry` drop it); Ctrl-C at the prompt clears the line; Ctrl-D
or `/exit` quits. The conversation is saved after every change.
"""

from __future__ import annotations

from typing import Any

from hermes_cli import sessions
from hermes_cli.chatml import ChatML
from hermes_cli.conversation import Conversation
from hermes_cli.engine import Engine, GenerationResult
from hermes_cli.errors import ContextOverflowError, HermesError

CONTEXT_WARNING = 0.8  # warn once the conversation fills this share of the context


class Repl:
    """The chat loop. `session` reads a line (prompt_toolkit's PromptSession, or a test
    double with the same `prompt()`); `console` is a rich Console."""

    def __init__(self, engine: Engine, conversation: Conversation, *, console: Any,
                 session: Any, plain: bool = False, autosave: bool = True) -> None:
        self.engine = engine
        self.chat = ChatML(engine)
        self.conversation = conversation
        self.console = console
        self.session = session
        self.plain = plain
        self.autosave = autosave
        self.last_result: GenerationResult | None = None
        self.total_tokens = 0
        self.tools: dict[str, Any] = {}  # name -> hermes_cli.tools.Tool
        self.always_allowed: set[str] = set()
        self.auto_approve = False

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        from hermes_cli import commands

        if not self.plain and self.console.is_terminal:
            import rich.markdown  # noqa: F401  (load it now, not inside the first reply)
        info = self.engine.info
        self.say(f"hermes chat · {info.path.name} · context {info.n_ctx} · "
                 f"/help for commands · Ctrl-D to quit", style="dim")
        if self.conversation.messages:
            restored = sessions.restore_state(self.engine, self.conversation.id) if self.autosave else 0
            self.say(f"resumed conversation {self.conversation.id} "
                     f"({len(self.conversation.messages)} messages"
                     + (f", {restored} tokens of saved state" if restored else "") + ")", style="dim")
        while True:
            try:
                line = self.session.prompt("> ")
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt: the line is cleared
            except EOFError:
                break
            if not line.strip():
                continue
            if line.lstrip().startswith("/"):
                try:
                    if commands.dispatch(self, line.strip()):
                        break
                except HermesError as e:
                    self.error(str(e))
                continue
            self.send(line)
        self.save()
        self.save_state()
        return 0

    def save_state(self) -> None:
        """Keep the KV cache for an instant `--continue` (only for recent sessions)."""
        if not self.autosave or not self.conversation.messages:
            return
        try:
            sessions.save_state(self.engine, self.conversation.id)
        except OSError as e:
            self.error(f"could not save the model state (resuming will re-read the "
                       f"conversation): {e.strerror or e}")

    def send(self, text: str) -> None:
        self.conversation.add("user", text)
        self.save()
        self.respond()

    def respond(self) -> None:
        """Generate the reply to the conversation as it stands (it ends with a user turn)."""
        conv = self.conversation
        system = self.effective_system()
        reserve = min(conv.params.max_tokens or 1024, self.engine.n_ctx // 4)
        try:
            ids, dropped = conv.fit(self.chat, system, self.engine.n_ctx, reserve)
        except ContextOverflowError as e:
            conv.undo()
            self.error(f"{e}; the message was not sent")
            return
        if dropped:
            self.say(f"context full: dropped the {dropped} oldest messages "
                     "(the system prompt is kept)", style="yellow")
        if conv.json_mode:
            self._respond_json(system)
            return
        if self.tools:
            self._respond_with_tools(system)
            return
        renderer = self._renderer()
        gen = self.engine.generate(ids, conv.params)
        try:
            for text in gen:
                renderer.feed(text)
        except KeyboardInterrupt:
            gen.close()
        finally:
            renderer.finish()
        result = gen.result
        assert result is not None
        self.last_result = result
        self.total_tokens += result.completion_tokens
        conv.add("assistant", result.text, token_ids=result.token_ids)
        self.save()
        if result.finish_reason == "interrupted":
            self.say("(stopped; the partial reply is kept: /retry regenerates it, /undo drops "
                     "the exchange)", style="yellow")
        elif result.finish_reason == "context":
            self.say("(the reply filled the context and was cut)", style="yellow")
        self.footer(result)

    def _respond_json(self, system: str | None) -> None:
        from hermes_cli import jsonmode
        from hermes_cli.errors import OutputContractError

        conv = self.conversation
        mode = jsonmode.JsonMode(conv.json_schema, "/schema")
        try:
            answer = jsonmode.answer(self.engine, self.chat, conv.with_system(system), mode,
                                     conv.params)
        except KeyboardInterrupt:
            self.say("(stopped)", style="yellow")
            return
        except OutputContractError as e:
            self.error(str(e))
            return
        result = answer.results[-1]
        self.last_result = result
        self.total_tokens += sum(r.completion_tokens for r in answer.results)
        conv.add("assistant", result.text, token_ids=result.token_ids)
        self.save()
        self.show_json(answer.value)
        self.footer(result)

    def _respond_with_tools(self, system: str | None) -> None:
        from hermes_cli.toolloop import ToolEvent, run_tool_loop, short
        from hermes_cli.tools import ToolCall

        conv = self.conversation

        def approve(call: ToolCall) -> bool:
            if self.auto_approve or call.name in self.always_allowed:
                return True
            import json

            args = json.dumps(call.arguments, ensure_ascii=False)
            try:
                answer = self.session.prompt(f"run {call.name}({args})? [y]es/[n]o/[a]lways: ")
            except (KeyboardInterrupt, EOFError):
                return False
            answer = answer.strip().lower()
            if answer in ("a", "always"):
                self.always_allowed.add(call.name)
                return True
            return answer in ("y", "yes")

        def report(event: ToolEvent) -> None:
            arrow = {"call": "→", "result": "←", "error": "✗", "declined": "✗ declined"}[event.kind]
            self.say(f"{arrow} {event.name} {short(event.detail)}", style="cyan")

        try:
            loop = run_tool_loop(self.engine, self.chat, conv.with_system(system), self.tools,
                                 conv.params, approve=approve, report=report)
        except KeyboardInterrupt:
            self.say("(stopped)", style="yellow")
            return
        except ContextOverflowError as e:
            self.error(f"{e}; the tool results did not fit")
            return
        for msg in loop.messages:
            conv.messages.append(msg)
        self.save()
        result = loop.results[-1]
        self.last_result = result
        self.total_tokens += sum(r.completion_tokens for r in loop.results)
        renderer = self._renderer()
        renderer.feed(loop.text)
        renderer.finish()
        if loop.stopped == "round_limit":
            self.say(f"(stopped after {loop.rounds} tool rounds; the model still wanted tools)",
                     style="yellow")
        self.footer(result)

    # -- output -----------------------------------------------------------------------

    def _renderer(self) -> Any:
        from hermes_cli.render import MarkdownRenderer, PlainRenderer

        if self.plain or not self.console.is_terminal:
            return PlainRenderer(self.console.file)
        return MarkdownRenderer(self.console)

    def show_json(self, value: Any) -> None:
        import json

        if self.plain or not self.console.is_terminal:
            self.console.file.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
            return
        from rich.json import JSON

        self.console.print(JSON.from_data(value, ensure_ascii=False))

    def say(self, text: str, *, style: str | None = None) -> None:
        if self.plain:
            self.console.file.write(text + "\n")
            self.console.file.flush()
        else:
            self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        self.say(f"error: {text}", style="bold red")

    def footer(self, result: GenerationResult) -> None:
        used = result.prompt_tokens + result.completion_tokens
        n_ctx = self.engine.n_ctx
        self.say(f"{result.completion_tokens} tokens · {result.tokens_per_second:.1f} tok/s · "
                 f"context {used}/{n_ctx}", style="dim")
        if used > CONTEXT_WARNING * n_ctx:
            self.say(f"warning: the context is {100 * used // n_ctx}% full; the oldest turns "
                     "will be dropped to make room (/reset starts afresh)", style="yellow")

    # -- state ------------------------------------------------------------------------

    def effective_system(self) -> str | None:
        conv = self.conversation
        if self.tools and not conv.json_mode:
            from hermes_cli.tools import system_prompt

            return system_prompt(list(self.tools.values()), conv.system)
        if conv.json_mode:
            from hermes_cli.jsonmode import JsonMode

            return JsonMode(conv.json_schema).system_prompt(conv.system)
        return conv.system

    def save(self) -> None:
        if not self.autosave:
            return
        try:
            sessions.save(self.conversation)
        except OSError as e:  # a full disk must not end the chat: say so, keep going
            self.error(f"could not save the conversation: {e.strerror or e}")


def make_session(history_file: Any) -> Any:
    """A prompt_toolkit session: persistent history, slash-command completion, Emacs
    keys; Enter sends, Esc Enter (Alt-Enter) inserts a newline; pasted text keeps its
    newlines. Not Ctrl-J: a line typed ahead while a reply streams passes through the
    terminal's cooked mode, where Enter arrives as Ctrl-J, and must still be sent."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    from hermes_cli.commands import slash_completer

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    history_file.parent.mkdir(parents=True, exist_ok=True)
    return PromptSession(history=FileHistory(str(history_file)), completer=slash_completer(),
                         key_bindings=bindings, complete_while_typing=True)
