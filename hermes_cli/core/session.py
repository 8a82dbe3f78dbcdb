"""A chat session without a terminal: the loaded model, the conversation, its mode (text,
JSON, tools), the tools and their approvals, and every edit a slash-command makes.

The REPL (chat/) owns the screen and the keyboard; the slash-commands change the chat only
through this object, so they can be tested, and reused by other front ends, without a
terminal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hermes_cli.core import sessions
from hermes_cli.core.conversation import Conversation, new_id
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import GenerationResult
from hermes_cli.errors import UsageError
from hermes_cli.modes.json_mode import JsonMode, load_schema
from hermes_cli.modes.reply_mode import ReplyMode
from hermes_cli.modes.tools.loop import ToolOptions
from hermes_cli.modes.tools.tool import Tool
from hermes_cli.prompt.chatml import ChatML


class ChatSession:
    """One chat over one loaded model. `warn` receives problems that must not end the
    chat (a full disk while saving)."""

    def __init__(self, engine: Engine, conversation: Conversation, *, autosave: bool = True,
                 warn: Callable[[str], None] = lambda _msg: None) -> None:
        self.engine = engine
        self.chat = ChatML(engine)
        self.conversation = conversation
        self.autosave = autosave
        self.warn = warn
        self.last_result: GenerationResult | None = None
        self.total_tokens = 0
        self.tools: dict[str, Tool] = {}
        self.always_allowed: set[str] = set()
        self.auto_approve = False

    # -- what the model sees ------------------------------------------------------------

    def reply_mode(self) -> ReplyMode:
        """JSON when JSON mode is on (it wins over tools), else tools when loaded, else text."""
        conv = self.conversation
        if conv.json_mode:
            return ReplyMode(json=JsonMode(conv.json_schema, "/schema"))
        if self.tools:
            return ReplyMode(tools=ToolOptions(self.tools))
        return ReplyMode()

    def effective_system(self) -> str | None:
        """The system prompt as sent: the Hermes JSON or tool prompt, then the user's."""
        return self.reply_mode().system_prompt(self.conversation.system)

    def prompt_ids(self) -> list[int]:
        return self.chat.render(self.conversation.with_system(self.effective_system()))

    def record(self, result: GenerationResult, generated: int) -> None:
        """Account for a finished reply (for /stats and the footer)."""
        self.last_result = result
        self.total_tokens += generated

    # -- edits ---------------------------------------------------------------------------

    def set_system(self, text: str | None) -> None:
        self.conversation.system = text
        self.save()

    def set_json(self, on: bool) -> None:
        self.conversation.json_mode = on
        if on:
            self.engine.prefetch_grammars()
        self.save()

    def set_schema(self, spec: str | None) -> str:
        """Turn a schema on (from a file, inline JSON or module:Model) or off; return its source."""
        conv = self.conversation
        if spec is None:
            conv.json_schema, conv.json_mode = None, False
            self.save()
            return ""
        mode = load_schema(spec)
        mode.check()  # refuse a schema we cannot turn into a grammar, now
        conv.json_schema, conv.json_mode = mode.schema, True
        self.engine.prefetch_grammars()
        self.save()
        return mode.source

    def set_tools(self, tools: dict[str, Tool]) -> None:
        self.tools = tools
        if tools:
            self.engine.prefetch_grammars()

    def add_tools(self, path: str) -> list[str]:
        from hermes_cli.modes.tools.loading import check_unique, load_tools_file

        self.set_tools(check_unique(list(self.tools.values()) + load_tools_file(path)))
        return list(self.tools)

    def clear_tools(self) -> None:
        self.tools, self.always_allowed = {}, set()

    def set_param(self, name: str, value: Any) -> None:
        conv = self.conversation
        conv.params = dataclasses.replace(conv.params, **{name: value})
        self.save()

    def reset(self) -> str:
        """A new conversation with the same system prompt and settings; return the old id."""
        old = self.conversation
        self.conversation = Conversation(model=old.model, system=old.system, params=old.params,
                                         json_schema=old.json_schema, json_mode=old.json_mode)
        return old.id

    def undo(self) -> int:
        """Drop the last exchange; return how many messages went."""
        dropped = self.conversation.undo()
        if dropped:
            self.save()
        return len(dropped)

    def prepare_retry(self) -> None:
        if self.conversation.drop_reply() is None:
            raise UsageError("nothing to retry")

    def load_file(self, path: Path) -> int:
        """Load a saved conversation as a copy (the file is not overwritten)."""
        loaded = Conversation.load(path)
        loaded.id = new_id()
        self.conversation = loaded
        self.save()
        return len(loaded.messages)

    # -- saving --------------------------------------------------------------------------

    def save(self) -> None:
        if not self.autosave:
            return
        try:
            sessions.save(self.conversation)
        except OSError as e:  # a full disk must not end the chat: say so, keep going
            self.warn(f"could not save the conversation: {e.strerror or e}")

    def save_state(self) -> None:
        """Keep the KV cache for an instant `--continue` (only for recent sessions)."""
        if not self.autosave or not self.conversation.messages:
            return
        try:
            sessions.save_state(self.engine, self.conversation.id)
        except OSError as e:
            self.warn(f"could not save the model state (resuming will re-read the "
                      f"conversation): {e.strerror or e}")

    def restore_state(self) -> int:
        return sessions.restore_state(self.engine, self.conversation.id) if self.autosave else 0
