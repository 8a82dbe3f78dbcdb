"""A chat session without a terminal: the loaded model, the conversation, its mode (text,
JSON, tools), the tools and their approvals, and every edit a slash-command makes.

The REPL (chat/) owns the screen and the keyboard; the slash-commands change the chat only
through this object, so they can be tested, and reused by other front ends, without a
terminal.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hermes_cli.core import branches, chat_turn, figures, locks, sessions
from hermes_cli.core.attachments import Sized, expand_mentions, measure, read_files, with_files
from hermes_cli.core.backends import Backend, replace_model, with_call_format
from hermes_cli.core.chat_roles import take_schema_and_tools
from hermes_cli.core.conversation import Conversation, new_id
from hermes_cli.core.turn import Turn, TurnNote
from hermes_cli.engine.params import GenerationResult, check_sampling
from hermes_cli.errors import UsageError
from hermes_cli.modes.json_mode import JsonMode, load_schema
from hermes_cli.modes.reply_mode import ReplyMode
from hermes_cli.modes.tools.loop import ToolOptions
from hermes_cli.modes.tools.tool import Tool
from hermes_cli.prompt.messages import Message
from hermes_cli.prompt.tool_calls import ToolCall

if TYPE_CHECKING:
    from hermes_cli.core.config import Config, Role
    from hermes_cli.core.loading import LoadOptions
    from hermes_cli.mcp_servers.toolset import McpToolset


class ChatSession:
    """One chat over one backend, configured at construction. `warn` receives problems
    that must not end the chat (a full disk while saving); `confirm` asks the user about
    a tool call ("y", "n", "a" for always; None when they cancel)."""

    def __init__(self, backend: Backend, conversation: Conversation, *, autosave: bool = True,
                 warn: Callable[[str], None] = lambda _msg: None,
                 confirm: Callable[[ToolCall], str | None] = lambda _call: None,
                 auto_approve: bool = False, config: Config | None = None,
                 load_options: LoadOptions | None = None, role: Role | None = None,
                 mcp: McpToolset | None = None, lock: locks.Holder | None = None,
                 call_format: str = "auto", status: TextIO | None = None) -> None:
        self.backend = backend
        self.conversation = conversation
        self.autosave = autosave
        self.warn = warn
        self.confirm = confirm
        self.auto_approve = auto_approve
        self.config = config  # roles and aliases, for /role and /model (read when first needed)
        self.status = status  # where loading another model says what it does (None: nowhere)
        self.load_options = load_options  # how the model was loaded, for /model
        self.mcp = mcp  # MCP servers, whose tools join `tools`
        self.lock = lock if lock is not None else locks.Holder()  # one writer per conversation
        self.call_format = call_format  # "auto": the model's (prompt/call_format.py)
        self.choices: list[str] | None = None  # decision mode's labels (core/chat_decision.py)
        self.last_result: GenerationResult | None = None
        self.last_reasoning: str | None = None  # the last reply's thinking (a reasoning model's)
        self.total_tokens = 0
        self.tools: dict[str, Tool] = {}
        self.always_allowed: set[str] = set()
        self.pending_files: list[Sized] = []  # /read: sent with the next message
        self.role: str | None = None
        self._json: JsonMode | None = None  # see _json_mode
        if role is not None:  # its system prompt and sampling are already in the settings
            self.role = role.name
            take_schema_and_tools(self, role)

    # -- a turn ---------------------------------------------------------------------------

    def send(self, text: str) -> Turn:
        """One turn, end to end: the user's message (with its files), then the reply's
        events, ending with `Final`; by then the reply is in the conversation and saved.
        Cancelled (Ctrl-C), the partial reply is kept. When the turn fails (files that
        overflow the context, a generation that errs) the user's message is taken back:
        it is never kept without its reply (core/chat_turn.py)."""
        if self.choices:  # decision mode (/choices, a role's choices)
            from hermes_cli.core.chat_decision import decision_turn

            return Turn(decision_turn(self, text, self.choices))
        return chat_turn.send(self, text)

    def retry(self) -> Turn:
        """/retry: the last reply again (the old one comes back if this one fails)."""
        before = list(self.conversation.messages)
        if self.conversation.drop_reply() is None:
            raise UsageError("nothing to retry")
        return chat_turn.respond(self, restore=before[len(self.conversation.messages):])

    def edit(self, n: int, text: str) -> Turn:
        """/edit: user message N as `text`, on a new branch (the old one is kept), and the
        reply to it."""
        k = branches.edit(self.conversation, n, text)
        self.save()
        return chat_turn.respond(self, note=TurnNote(f"branch {k} (the old one is kept: /branches)"))

    def continue_reply(self) -> Turn:
        """/continue: the model goes on with the last reply (cut by --max-tokens or Ctrl-C),
        from the KV state already there; the reply stays one turn. Text replies only."""
        conv = self.conversation
        if not conv.messages or conv.messages[-1].role != "assistant":
            raise UsageError("nothing to continue: the last message is not a reply")
        if self.reply_mode().name != "text":
            raise UsageError("/continue goes on with text replies (not with JSON mode or tools)")
        continuing = conv.messages.pop()
        return chat_turn.respond(self, continuing=continuing, restore=[continuing])

    def may_run(self, command: str) -> bool:
        """/read '!cmd': asked as a call of `command` would be (--yes lets it run)."""
        return self.approve(ToolCall("command", {"command": command}))

    def approve(self, call: ToolCall) -> bool:
        """Run this call? Yes with --yes or after "always"; otherwise the user says."""
        if self.auto_approve or call.name in self.always_allowed:
            return True
        answer = (self.confirm(call) or "").strip().lower()
        if answer in ("a", "always"):
            self.always_allowed.add(call.name)
            return True
        return answer in ("y", "yes")

    # -- what the model sees ------------------------------------------------------------

    def reply_mode(self) -> ReplyMode:
        """JSON when JSON mode is on (it wins over tools), else tools when loaded, else text."""
        conv = self.conversation
        if conv.json_mode:
            return ReplyMode(json=self._json_mode())
        tools = self.all_tools()
        if tools:
            # the format of the model loaded now (/model may change it), unless the user chose
            return ReplyMode(tools=with_call_format(ToolOptions(tools, call_format=self.call_format), self.backend))
        return ReplyMode()

    def _json_mode(self) -> JsonMode:
        """The chat's schema as one JsonMode, kept while the schema stays the same, so it
        is compiled by llguidance once, not once per turn (and per /prompt)."""
        schema = self.conversation.json_schema
        if self._json is None or self._json.schema != schema:
            self._json = JsonMode(schema, "/schema")
        return self._json

    def all_tools(self) -> dict[str, Tool]:
        """The user's --tools functions, then the running MCP servers' tools."""
        remote = self.mcp.tools(self.tools) if self.mcp is not None else {}
        return {**self.tools, **remote}

    def effective_system(self) -> str | None:
        """The system prompt as sent: the Hermes JSON or tool prompt, then the user's."""
        return self.reply_mode().system_prompt(self.conversation.system)

    def describe(self) -> str:
        """What the chat runs on, for /model."""
        return figures.describe(self.backend.facts())

    def prompt_text(self) -> str:
        """Exactly what the model is sent: the rendered prompt, or the request's JSON."""
        messages = self.conversation.seen(self.effective_system())
        text, ids = self.backend.show_prompt(messages, self.conversation.params)
        return text if ids is None else text + f"\n({len(ids)} tokens)"

    def _prefetch(self) -> None:
        self.backend.prepare_grammars()

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
            self._prefetch()
        self.save()

    def set_schema(self, spec: str | None) -> str:
        """Turn a schema on (from a file, inline JSON or module:Model) or off; return its source."""
        conv = self.conversation
        if spec is None:
            conv.json_schema, conv.json_mode = None, False
            self.save()
            return ""
        mode = load_schema(spec, name="/schema")
        mode.check()  # refuse a schema we cannot turn into a grammar, now
        conv.json_schema, conv.json_mode = mode.schema, True
        self._json = dataclasses.replace(mode, source="/schema")  # compiled: kept for the turns
        self._prefetch()
        self.save()
        return mode.source

    def set_tools(self, tools: dict[str, Tool]) -> None:
        self.tools = tools
        if tools:
            self._prefetch()

    def add_tools(self, path: str) -> list[str]:
        from hermes_cli.modes.tools.loading import check_unique, load_tools_file

        self.set_tools(check_unique(list(self.tools.values()) + load_tools_file(path, name="/tools")))
        return list(self.tools)

    def clear_tools(self) -> None:
        self.tools, self.always_allowed = {}, set()

    def set_param(self, name: str, value: Any) -> None:
        """Change one sampling setting, checked against the same table as the options,
        the config file and session files (a value saved here must load again)."""
        check_sampling(name, value)
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

    def load_file(self, path: Path) -> int:
        """Load a saved conversation as a copy (the file is not overwritten)."""
        loaded = Conversation.load(path)
        loaded.id = new_id()
        self.conversation = loaded
        self.save()
        return len(loaded.messages)

    # -- files in the prompt ------------------------------------------------------------

    def _count(self) -> Callable[[str], int | None]:
        return self.backend.count

    def prompt_tokens(self, extra: str = "") -> int | None:
        """Tokens the prompt takes now (with `extra` as one more user turn); None when
        the backend cannot count them."""

        messages = self.conversation.seen(self.effective_system())
        return self.backend.prompt_tokens([*messages, Message("user", extra)] if extra else messages)

    def room(self, tokens: int | None) -> str:
        """" · prompt N of CTX tokens" where both are known, else nothing."""
        return figures.prompt_room(self.backend.facts(), tokens)

    def attach(self, specs: list[str]) -> list[Sized]:
        """/read: files for the next message, measured and checked against the context now."""
        if not specs:
            raise UsageError("usage: /read PATH… (globs too: /read src/*.py)")
        sized = measure(read_files(specs, run=self.may_run), self._count())
        self.backend.check_files_fit(self.pending_files + sized, self.prompt_tokens())
        self.pending_files += sized
        return sized

    def compose(self, text: str) -> tuple[str, list[Sized]]:
        """The user turn for `text`: its `@path` files and the /read ones appended, fenced.
        Raises (and keeps the /read files) when they cannot fit."""
        _text, mentioned = expand_mentions(text)
        files = self.pending_files + measure(mentioned, self._count())
        if not files:
            return text, []
        content = with_files(text, [f.attachment for f in files])
        self.backend.check_files_fit(files, self.prompt_tokens(text))
        self.pending_files = []
        return content, files

    # -- branches -------------------------------------------------------------------------

    def fork(self) -> int:
        k = branches.fork(self.conversation)
        self.save()
        return k

    def switch_branch(self, k: int) -> int:
        branches.switch(self.conversation, k)
        self.save()
        return k

    # -- models (roles: core/chat_roles.py) --------------------------------------------------

    def settings_file(self) -> Config:
        """The config (roles, model aliases): the one given, else read now, once."""
        if self.config is None:
            from hermes_cli.core.config import load_config

            self.config = load_config()
        return self.config

    def switch_model(self, ref: str) -> str:
        """/model REF: load another model (an alias from the config, a path or a Hub
        reference, downloading if needed), loaded as this one was, and keep the
        conversation; its history is re-tokenized for the new vocabulary. The old model
        stays loaded until the new one is ready, so a failure leaves the chat as it was."""
        from hermes_cli.core.loading import LoadOptions

        base = self.load_options or LoadOptions(model="")
        opts = dataclasses.replace(base, model=self.settings_file().resolve_model(ref))
        self.backend = replace_model(self.backend, opts, self.status or io.StringIO())
        for branch in self.conversation.synced_branches():
            for msg in branch.messages:
                msg.token_ids = None  # ids of the old vocabulary mean nothing here
        self.conversation.model = opts.model
        if self.conversation.json_mode or self.tools:
            self._prefetch()
        self.save()
        return self.backend.facts().name

    # -- saving --------------------------------------------------------------------------

    def save(self) -> None:
        if not self.autosave:
            return
        conv = self.conversation
        try:
            self.lock.hold(sessions.path_for(conv.id), f"conversation {conv.id}")
        except (UsageError, OSError) as e:  # another hermes writes it: never two writers
            self.warn(f"could not save the conversation: {e}")
            return
        try:
            sessions.save(conv)
        except OSError as e:  # a full disk must not end the chat: say so, keep going
            self.warn(f"could not save the conversation: {e.strerror or e}")

    def save_state(self) -> None:
        """Keep the KV cache for an instant `--continue` (only for recent sessions)."""
        if not self.autosave or not self.conversation.messages:
            return
        try:
            self.backend.save_state(self.conversation.id)
        except OSError as e:
            self.warn(f"could not save the model state (resuming will re-read the "
                      f"conversation): {e.strerror or e}")

    def restore_state(self) -> int:
        if not self.autosave:
            return 0
        return self.backend.restore_state(self.conversation.id)
