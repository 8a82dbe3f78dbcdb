"""A chat's history: its editing, saving and fitting into the context window.

Saved as JSON (OpenAI-style `messages` plus the settings that shaped them), written
atomically after every change, so a crash, Ctrl-C or a full disk never leaves a
half-written file: the previous version stays until the new one is whole.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hermes_cli import inputs, jsontext
from hermes_cli.engine.params import SamplingParams, sampling_from
from hermes_cli.errors import ContextOverflowError, UsageError
from hermes_cli.prompt.messages import ROLES, Message, with_system
from hermes_cli.prompt.template import PromptFormat

FORMAT_VERSION = 1
MAX_FILE = 256 << 20  # bytes: a conversation file to load (/load, export's input)


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def valid_id(text: str) -> bool:
    """A conversation id is a file name in the sessions folder: letters, digits, `_`,
    `-`, `.` (no `..`, no `/`), so an id from a file or a flag cannot name a path."""
    return bool(_ID.fullmatch(text)) and ".." not in text


def new_id() -> str:
    """Sortable by time, unique enough: 20261123-215012-3fa2."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


@dataclass
class Branch:
    """One line of the conversation: its messages, and where it forked from."""

    messages: list[Message]
    parent: int | None = None  # the branch it forked from
    at: int = 0  # how many of the parent's messages it shares


@dataclass(frozen=True)
class Compaction:
    """The first `covers` messages of branch `branch`, summarized by the model as `note`
    (core/compaction.py): the window shows the note in their place. `digest` is of the
    messages it covers: an /undo or /edit into them makes it stale, and it is not used."""

    branch: int
    covers: int
    digest: str
    note: str


def digest(messages: list[Message]) -> str:
    import hashlib

    h = hashlib.sha256()
    for m in messages:
        h.update(f"{m.role}\0{len(m.content)}\0{m.content}\0".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


NOTE_HEADER = "A summary of the earlier part of this conversation (those turns are not shown):"


@dataclass
class Conversation:
    id: str = field(default_factory=new_id)
    model: str = ""
    system: str | None = None
    messages: list[Message] = field(default_factory=list)  # the current branch; no system message
    params: SamplingParams = field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    created: float = field(default_factory=time.time)
    # Every branch (core/branches.py); `messages` is the current one's list.
    branches: list[Branch] = field(default_factory=list)
    current: int = 0
    compaction: Compaction | None = None  # the oldest turns as a note (core/compaction.py)

    def synced_branches(self) -> list[Branch]:
        """The branches, the current one holding `messages` as they are now."""
        if not self.branches:
            self.branches = [Branch(self.messages)]
        self.branches[self.current].messages = self.messages
        return self.branches

    # -- editing ----------------------------------------------------------------------

    def add(self, role: str, content: str, token_ids: list[int] | None = None) -> Message:
        msg = Message(role, content, token_ids=token_ids)
        self.messages.append(msg)
        return msg

    def _last_user_index(self) -> int | None:
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "user":
                return i
        return None

    def undo(self) -> list[Message]:
        """Drop the last exchange (the last user message and everything after it)."""
        i = self._last_user_index()
        if i is None:
            return []
        dropped, self.messages = self.messages[i:], self.messages[:i]
        return dropped

    def last_reply(self) -> Message | None:
        for msg in reversed(self.messages):
            if msg.role == "assistant":
                return msg
        return None

    def last_user(self) -> Message | None:
        i = self._last_user_index()
        return None if i is None else self.messages[i]

    def drop_reply(self) -> Message | None:
        """For /retry: remove what followed the last user message; return that message."""
        i = self._last_user_index()
        if i is None:
            return None
        self.messages = self.messages[: i + 1]
        return self.messages[i]

    # -- the prompt -------------------------------------------------------------------

    def with_system(self, system: str | None) -> list[Message]:
        """Every message of the branch after the system prompt (a transcript's view)."""
        return with_system(system, self.messages)

    def seen(self, system: str | None) -> list[Message]:
        """What the model is sent before any trimming: a compaction's note in place of
        the turns it covers."""
        system, base = self.compacted(system)
        return with_system(system, self.messages[base:])

    def window(self, template: PromptFormat, system: str | None, n_ctx: int, reserve: int) -> tuple[list[Message], int]:
        """What the model sees: the system prompt and the newest turns that leave
        `reserve` tokens for the reply (the oldest turns left out, whole; never the
        newest user message). A view: the conversation itself keeps every turn, so
        `export`, `history --grep` and a later, larger context still have them.

        Returns the messages to send and how many of the conversation's were left out
        (beyond those a compaction's note stands for).
        """
        system, base = self.compacted(system)  # a compaction's note stands for the turns it covers
        start = base
        while True:
            shown = self.messages[start:]
            view = with_system(system, shown)
            ids = template.render(view)
            if len(ids) + reserve <= n_ctx:
                return view, start - base
            last_user = max((i for i, m in enumerate(shown) if m.role == "user"), default=None)
            if last_user is None or last_user == 0:
                if len(ids) < n_ctx:  # less room than hoped, but the turn fits
                    return view, start - base
                raise ContextOverflowError(len(ids), n_ctx)
            # leave out the oldest message, then anything up to the next user message
            start += 1
            while start < len(self.messages) and self.messages[start].role != "user":
                start += 1

    def compacted(self, system: str | None) -> tuple[str | None, int]:
        """The system prompt with the compaction's note after it, and the first message
        the note does not cover; (system, 0) when there is none, or it is stale."""
        c = self.compaction
        if c is None or c.branch != self.current or c.covers > len(self.messages) \
                or digest(self.messages[:c.covers]) != c.digest:
            return system, 0
        note = f"{NOTE_HEADER}\n{c.note}"
        return (f"{system}\n\n{note}" if system else note), c.covers

    # -- saving -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        msgs += [_message_dict(m) for m in self.messages]
        data: dict[str, Any] = {
            "format": FORMAT_VERSION, "id": self.id, "created": self.created, "model": self.model,
            "messages": msgs,
            "settings": {"params": asdict(self.params), "json_mode": self.json_mode,
                         "json_schema": self.json_schema},
        }
        if self.compaction is not None:
            c = self.compaction
            data["compaction"] = {"branch": c.branch, "covers": c.covers, "digest": c.digest, "note": c.note}
        branches = self.synced_branches()
        if len(branches) > 1:  # the tree: every branch whole (a parent may be edited later)
            data["branches"] = [{"parent": b.parent, "at": b.at,
                                 "messages": [_message_dict(m) for m in b.messages]} for b in branches]
            data["current"] = self.current
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        """A conversation from saved JSON, every field checked (the file may be old,
        damaged or crafted): UsageError names the first problem. Saved token ids are
        kept as a claim only; prompt/chatml.py checks them before use."""
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"not a hermes conversation file ({e})") from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Conversation:
        raw = data["messages"]
        if not isinstance(raw, list):
            raise TypeError("messages must be a list")
        system = None
        messages: list[Message] = []
        for m in raw:
            if not isinstance(m, dict):
                raise TypeError("each message must be an object")
            role, content = m["role"], m["content"]
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}")
            if not isinstance(content, str):
                raise TypeError("content must be text")
            if role == "system" and not messages and system is None:
                system = content
                continue
            ids = m.get("token_ids")
            ok = isinstance(ids, list) and all(type(t) is int for t in ids)
            messages.append(Message(role, content, token_ids=list(ids) if ok and ids else None))
        settings = data.get("settings") or {}
        if not isinstance(settings, dict):
            raise TypeError("settings must be an object")
        params = settings.get("params") or {}
        if not isinstance(params, dict):
            raise TypeError("settings.params must be an object")
        schema = settings.get("json_schema")
        if schema is not None:
            from hermes_cli.modes.json_schema import check_schema

            check_schema(schema, "the saved schema")
        saved_id = data.get("id")
        created = data.get("created")
        conv = cls(id=saved_id if isinstance(saved_id, str) and valid_id(saved_id) else new_id(),
                   model=str(data.get("model") or ""), system=system, messages=messages,
                   params=sampling_from({k: v for k, v in params.items() if k != "ignore_eos"}),
                   json_schema=schema, json_mode=settings.get("json_mode") is True,
                   created=_created(created))
        kept = data.get("compaction")
        if kept is not None:
            if not (isinstance(kept, dict) and all(isinstance(kept.get(k), int) and not isinstance(kept.get(k), bool)
                                                   and kept[k] >= 0 for k in ("branch", "covers"))
                    and isinstance(kept.get("digest"), str) and isinstance(kept.get("note"), str)):
                raise ValueError("compaction must hold branch, covers, digest and note")
            conv.compaction = Compaction(kept["branch"], kept["covers"], kept["digest"], kept["note"])
        raw_branches = data.get("branches")
        if raw_branches is not None:
            if not isinstance(raw_branches, list) or not raw_branches:
                raise TypeError("branches must be a non-empty list")
            branches = []
            for i, b in enumerate(raw_branches):
                parent, at = b.get("parent"), b.get("at", 0)
                if parent is not None and not (isinstance(parent, int) and 0 <= parent < i):
                    raise ValueError(f"branch {i} has a bad parent")
                if not isinstance(at, int) or at < 0:
                    raise ValueError(f"branch {i} has a bad fork point")
                branches.append(Branch(_messages_from(b["messages"]), parent, at))
            current = data.get("current", 0)
            if not isinstance(current, int) or not 0 <= current < len(branches):
                raise ValueError("current names no branch")
            conv.branches, conv.current = branches, current
            conv.messages = branches[current].messages
        return conv

    def save(self, path: Path) -> None:
        """Atomic: write a temporary file, then rename over the old one."""
        write_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: Path) -> Conversation:
        if not Path(path).exists():
            raise UsageError(f"no such file: {path}")
        try:
            data = jsontext.loads(inputs.read_file(Path(path), MAX_FILE).decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise UsageError(f"cannot read {path}: {e}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path} is not a hermes conversation file")
        return cls.from_dict(data)

    def markdown(self) -> str:
        """A readable transcript."""
        out = [f"# Conversation {self.id}", ""]
        if self.model:
            out += [f"Model: `{self.model}`", ""]
        for m in self.with_system(self.system):
            out += [f"## {m.role}", "", _nested(m.content), ""]
        branches = self.synced_branches()
        for k, b in enumerate(branches):
            if k == self.current or len(branches) == 1:
                continue
            origin = "" if b.parent is None else f" (from branch {b.parent}, after message {b.at})"
            out += [f"# Branch {k}{origin}", ""]
            for m in b.messages[b.at:]:
                out += [f"## {m.role}", "", _nested(m.content), ""]
        return "\n".join(out)

    def export(self, path: Path) -> None:
        if path.suffix.lower() == ".md":
            write_atomic(path, self.markdown())
        else:
            self.save(path)


_HEADING = re.compile(r"^ {0,3}(#{1,6})(?=\s|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _nested(content: str) -> str:
    """A message's Markdown with its headings moved under the transcript's (`# Title` in a
    reply became a heading at the level of `# Conversation`): three levels down, at most
    six; code blocks untouched."""
    out, fence = [], ""
    for line in content.split("\n"):
        marker = _FENCE.match(line)
        if fence:
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = ""
        elif marker:
            fence = marker.group(1)
        else:
            heading = _HEADING.match(line)
            if heading:
                level = min(6, len(heading.group(1)) + 3)
                line = "#" * level + line[heading.end():]
        out.append(line)
    return "\n".join(out)


def _created(value: Any) -> float:
    """The saved creation time; a number no clock gives (a 401-digit one overflowed
    float()) makes the file invalid, missing is now."""
    if value is None:
        return time.time()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e11:
        raise ValueError(f"created must be a time in seconds, not {str(value)[:20]}")
    return float(value)


def _message_dict(m: Message) -> dict[str, Any]:
    d: dict[str, Any] = m.to_dict()
    if m.token_ids is not None:
        d["token_ids"] = m.token_ids  # keeps the KV prefix exact on resume
    return d


def _messages_from(raw: Any) -> list[Message]:
    if not isinstance(raw, list):
        raise TypeError("messages must be a list")
    out = []
    for m in raw:
        if not isinstance(m, dict):
            raise TypeError("each message must be an object")
        role, content = m["role"], m["content"]
        if role not in ROLES or role == "system":
            raise ValueError(f"unexpected role {role!r} in a branch")
        if not isinstance(content, str):
            raise TypeError("content must be text")
        ids = m.get("token_ids")
        ok = isinstance(ids, list) and all(type(t) is int for t in ids)
        out.append(Message(role, content, token_ids=list(ids) if ok and ids else None))
    return out


def write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
