"""A chat's history: its editing, saving and fitting into the context window.

Saved as JSON (OpenAI-style `messages` plus the settings that shaped them), written
atomically after every change, so a crash, Ctrl-C or a full disk never leaves a
half-written file: the previous version stays until the new one is whole.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import ContextOverflowError, UsageError
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message

FORMAT_VERSION = 1


def new_id() -> str:
    """Sortable by time, unique enough: 20261123-215012-3fa2."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


@dataclass
class Conversation:
    id: str = field(default_factory=new_id)
    model: str = ""
    system: str | None = None
    messages: list[Message] = field(default_factory=list)  # no system message here
    params: SamplingParams = field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    created: float = field(default_factory=time.time)

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
        return ([Message("system", system)] if system else []) + self.messages

    def fit(self, chat: ChatML, system: str | None, n_ctx: int, reserve: int) -> tuple[list[int], int]:
        """Token ids of the prompt, dropping the oldest turns (never the system prompt,
        never the newest user message) until `reserve` tokens are left for the reply.

        Returns the ids and how many messages were dropped from `self.messages`.
        """
        dropped = 0
        while True:
            ids = chat.render(self.with_system(system))
            if len(ids) + reserve <= n_ctx:
                return ids, dropped
            last_user = self._last_user_index()
            if last_user is None or last_user == 0:
                if len(ids) < n_ctx:  # less room than hoped, but the turn fits
                    return ids, dropped
                raise ContextOverflowError(len(ids), n_ctx)
            # drop the oldest message, then anything up to the next user message
            self.messages.pop(0)
            dropped += 1
            while self.messages and self.messages[0].role != "user":
                self.messages.pop(0)
                dropped += 1

    # -- saving -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        for m in self.messages:
            d: dict[str, Any] = m.to_dict()
            if m.token_ids is not None:
                d["token_ids"] = m.token_ids  # keeps the KV prefix exact on resume
            msgs.append(d)
        return {
            "format": FORMAT_VERSION, "id": self.id, "created": self.created, "model": self.model,
            "messages": msgs,
            "settings": {"params": asdict(self.params), "json_mode": self.json_mode,
                         "json_schema": self.json_schema},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        try:
            raw = data["messages"]
            system = None
            messages: list[Message] = []
            for m in raw:
                role, content = m["role"], m["content"]
                if not isinstance(content, str):
                    raise TypeError("content must be text")
                if role == "system" and not messages and system is None:
                    system = content
                else:
                    ids = m.get("token_ids")
                    messages.append(Message(role, content, token_ids=list(ids) if ids else None))
            settings = data.get("settings") or {}
            params = SamplingParams(**settings.get("params", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(f"not a hermes conversation file ({e})") from None
        return cls(id=str(data.get("id") or new_id()), model=str(data.get("model", "")),
                   system=system, messages=messages, params=params,
                   json_schema=settings.get("json_schema"),
                   json_mode=bool(settings.get("json_mode")),
                   created=float(data.get("created") or time.time()))

    def save(self, path: Path) -> None:
        """Atomic: write a temporary file, then rename over the old one."""
        write_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: Path) -> Conversation:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"no such file: {path}") from None
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
            out += [f"## {m.role}", "", m.content, ""]
        return "\n".join(out)

    def export(self, path: Path) -> None:
        if path.suffix.lower() == ".md":
            write_atomic(path, self.markdown())
        else:
            self.save(path)


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
