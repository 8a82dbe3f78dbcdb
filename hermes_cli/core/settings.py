"""What a command runs with, from every layer that can set it, in one place.

Precedence, from strongest: the command line > the environment > the role (`--role`) >
the saved session's settings (`--continue`, `--resume`) > the config file > the
built-in defaults. Each layer says only what it sets; the first layer that sets a value
wins, value by value, so `chat --continue --max-tokens 3` keeps the session's
temperature but writes at most 3 tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hermes_cli import env
from hermes_cli.core.config import Config, Role
from hermes_cli.core.conversation import Conversation
from hermes_cli.engine.params import SamplingParams, check_sampling, sampling_from

if TYPE_CHECKING:
    from hermes_cli.modes.json_mode import JsonMode


@dataclass(frozen=True)
class Given:
    """What the command line said (None / empty: not said)."""

    model: str | None = None
    system: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    ctx: int | None = None
    gpu_layers: int | None = None
    threads: int | None = None
    role: str | None = None


@dataclass(frozen=True)
class Settings:
    model: str  # a reference for hub/resolve.py (aliases resolved)
    system: str | None
    params: SamplingParams
    ctx: int | None
    gpu_layers: int | None
    threads: int | None
    gpu_hint: bool
    role: Role | None  # its schema and tools: json_mode() and tool_files()

    def json_mode(self, schema: str | None, json_: bool) -> JsonMode | None:
        """`--schema`, else `--json`, else the role's schema, else free text: the rule for
        every one-shot command (a chat takes the role's through ChatSession)."""
        from hermes_cli.modes.json_mode import JsonMode, load_schema

        if schema is None and not json_ and self.role is not None:
            schema = self.role.schema_spec()
        if schema is not None:
            return load_schema(schema)
        return JsonMode() if json_ else None

    def choices(self, given: str | None) -> list[str] | None:
        """`--choices`, else the role's: decision mode's labels, or None."""
        from hermes_cli.core.decision import parse_choices

        if given is not None:
            return parse_choices(given)
        return self.role.choices if self.role is not None else None

    def tool_files(self, given: list[str] | None) -> list[str]:
        """The role's tools files, then the command line's `--tools`."""
        return [*(self.role.tools if self.role is not None else []), *(given or [])]


def resolve(given: Given, config: Config, session: Conversation | None = None) -> Settings:
    for name, value in given.sampling.items():  # the command line's, named as typed
        check_sampling(name, value, label="--" + name.replace("_", "-"))
    role = config.role(given.role) if given.role else None
    model = _first(given.model, env.model_from_env(), role.model if role else None,
                   session.model if session else None, config.model) or env.DEFAULT_MODEL_REF
    system = _first(given.system, role.system if role else None, session.system if session else None)
    layers: list[dict[str, Any]] = [given.sampling, role.sampling if role else {},
                                    asdict(session.params) if session else {}, config.sampling]
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged.update(layer)
    merged.pop("ignore_eos", None)
    return Settings(model=config.resolve_model(model), system=system, params=sampling_from(merged),
                    ctx=_first(given.ctx, config.ctx), gpu_layers=_first(given.gpu_layers, config.gpu_layers),
                    threads=_first(given.threads, config.threads), gpu_hint=config.gpu_hint, role=role)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
