"""A role from the config file applied to a chat (`/role NAME`, or `--role` at start): its
system prompt, sampling, schema and tools join the chat's. Apart from ChatSession, which
it edits through its public setters, so the session keeps one job: a chat's turns."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hermes_cli.engine.params import sampling_from

if TYPE_CHECKING:
    from hermes_cli.core.chat_session import ChatSession
    from hermes_cli.core.config import Config, Role


def apply_role(session: ChatSession, config: Config, name: str) -> list[str]:
    """/role NAME: its system prompt, sampling, schema and tools; what changed."""
    role = config.role(name)
    changed = []
    conv = session.conversation
    if role.system is not None:
        conv.system = role.system
        changed.append("system prompt")
    if role.sampling:
        current = {k: v for k, v in dataclasses.asdict(conv.params).items() if k != "ignore_eos"}
        conv.params = sampling_from({**current, **role.sampling})
        changed.append(", ".join(f"{k}={v}" for k, v in role.sampling.items()))
    changed += take_schema_and_tools(session, role)
    session.role = name
    session.save()
    return changed


def take_schema_and_tools(session: ChatSession, role: Role) -> list[str]:
    """A role's schema (JSON mode on), tools files and decision labels, added to the
    chat's; what changed."""
    from hermes_cli.modes.tools.loading import check_unique, load_tools_file

    changed = []
    if role.choices:
        session.choices = role.choices
        changed.append("choices " + ", ".join(role.choices))
    if role.schema is not None:
        session.set_schema(role.schema_spec())
        changed.append("schema (JSON mode on)")
    if role.tools:
        loaded = [t for path in role.tools for t in load_tools_file(path, name=f"role {role.name}: tools")]
        session.set_tools(check_unique(list(session.tools.values()) + loaded))
        changed.append("tools " + ", ".join(t.name for t in loaded))
    return changed
