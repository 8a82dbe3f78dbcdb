"""The user's config file (TOML): default model, sampling, context and offload, model
aliases (`-m theta`), named roles (a system prompt, a schema, tools and options), and MCP
servers. Every value is checked when the file is read; a bad one is one line naming the
file and the key.

Precedence, from strongest: the command line > the environment (HERMES_MODEL, ...) > the
role > the saved session's settings > this file > the built-in defaults.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_cli import env, inputs
from hermes_cli.engine.params import LOAD_LIMITS, SAMPLING_LIMITS, check_load, sampling_problem
from hermes_cli.errors import SettingError, UsageError
from hermes_cli.mcp_servers.spec import ServerSpec
from hermes_cli.prompt.call_format import AUTO, FORMATS

TEMPLATE = """\
# hermes-cli configuration (TOML). Every key is optional.
# Precedence: command line > environment > --role > saved session > this file > defaults.

# model = "NousResearch/Hermes-2-Theta-Llama-3-8B-GGUF:Q4_K_M"   # or an alias below
# ctx = 8192
# gpu_layers = -1
# threads = 8
# gpu_hint = true          # false: never say that a GPU sits idle
# prompt_cache = true      # false: `ask` never keeps a system prompt's KV state on disk
# compact = true           # false: a full chat leaves its oldest turns out instead of summarizing them
# call_format = "auto"     # tool calls: "arguments-first" (Hermes 2 Pro / Θ), "name-first", "auto"

# [sampling]
# temperature = 0.8
# top_p = 0.95
# top_k = 40
# min_p = 0.05
# repeat_penalty = 1.1
# frequency_penalty = 0.0
# presence_penalty = 0.0
# max_tokens = 1024

# [aliases]
# theta = "NousResearch/Hermes-2-Theta-Llama-3-8B-GGUF:Q4_K_M"
# pro = "NousResearch/Hermes-2-Pro-Llama-3-8B-GGUF:Q6_K"

# [roles.reviewer]
# system = "You review code. Be specific and brief."
# model = "pro"
# schema = "review-schema.json"      # a file (relative to this file), or an inline table
# tools = ["~/tools/git_tools.py"]
# [roles.reviewer.sampling]
# temperature = 0.2

# MCP servers: started (command) or reached (url) by ask, chat and batch; --no-mcp skips them.
# [mcp.servers.files]
# command = "npx"
# args = ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/notes"]
# env = { }
# allow = ["read_file", "list_directory"]   # run without asking
# timeout = 30                               # seconds per call
# [mcp.servers.search]
# url = "http://127.0.0.1:8765/mcp"
"""

MAX_CONFIG = 1 << 20  # bytes: a config file is a page of TOML
_TOP = {"model", "ctx", "gpu_layers", "threads", "gpu_hint", "prompt_cache", "compact", "call_format", "sampling",
        "aliases", "roles", "mcp"}
_ROLE = {"system", "model", "schema", "tools", "sampling", "choices"}
_MCP_SERVER = {"command", "args", "env", "url", "allow", "timeout"}


@dataclass
class Role:
    name: str
    system: str | None = None
    model: str | None = None
    schema: Any = None  # a schema dict, or a path (relative to the config file)
    tools: list[str] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)
    choices: list[str] | None = None  # decision mode's labels (core/decision.py)

    def schema_spec(self) -> str | None:
        """The schema as `--schema` and `/schema` take it: its file, or the inline table as JSON."""
        if self.schema is None:
            return None
        import json

        return self.schema if isinstance(self.schema, str) else json.dumps(self.schema)


@dataclass
class Config:
    path: Path | None = None
    model: str | None = None
    ctx: int | None = None
    gpu_layers: int | None = None
    threads: int | None = None
    gpu_hint: bool = True
    prompt_cache: bool = True
    compact: bool = True  # a full chat summarizes its oldest turns (core/compaction.py)
    call_format: str = "auto"  # prompt/call_format.py
    sampling: dict[str, Any] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    mcp: dict[str, ServerSpec] = field(default_factory=dict)

    def resolve_model(self, ref: str) -> str:
        """An alias to what it names (one level); anything else as it is."""
        return self.aliases.get(ref, ref)

    def role(self, name: str) -> Role:
        role = self.roles.get(name)
        if role is None:
            known = ", ".join(sorted(self.roles)) or "none defined"
            where = self.path or config_path()
            raise UsageError(f"no role {name!r} in {where} (roles: {known})", hint="hermes roles lists them")
        return role


def config_path() -> Path:
    """`HERMES_CONFIG`, else config.toml in the platform's config directory."""
    override = os.environ.get("HERMES_CONFIG")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(env.APP_NAME)) / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """The config file, checked; an empty Config when there is none."""
    path = path or config_path()
    if not path.exists():
        return Config()
    raw = inputs.read_file(path, MAX_CONFIG, f"the config file {path}")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None
    return _parse(data, path)


class _Bad(Exception):
    pass


def _parse(data: dict[str, Any], path: Path) -> Config:
    try:
        return _config(data, path)
    except _Bad as e:
        raise UsageError(f"config {path}: {e}", hint="hermes config edit opens it") from None


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _Bad(f"{where}unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _typed(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _Bad(f"{where}{key} must be a {names}, not {value!r}")
    return value


def _sampling(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _Bad(f"{where} must be a table")
    _check_keys(table, set(SAMPLING_LIMITS), f"{where} ")
    for key, value in table.items():
        problem = sampling_problem(key, value)
        if problem:
            raise _Bad(f"{where} {key} {problem}")
    return dict(table)


def _config(data: dict[str, Any], path: Path) -> Config:
    _check_keys(data, _TOP, "")
    cfg = Config(path=path, model=_typed(data, "model", str, ""), ctx=_typed(data, "ctx", int, ""),
                 gpu_layers=_typed(data, "gpu_layers", int, ""), threads=_typed(data, "threads", int, ""))
    hint = _typed(data, "gpu_hint", bool, "")
    cfg.gpu_hint = True if hint is None else hint
    keep = _typed(data, "prompt_cache", bool, "")
    cfg.prompt_cache = True if keep is None else keep
    compact = _typed(data, "compact", bool, "")
    cfg.compact = True if compact is None else compact
    fmt = _typed(data, "call_format", str, "")
    if fmt is not None and fmt not in (AUTO, *FORMATS):
        raise _Bad(f"call_format must be one of auto, {', '.join(FORMATS)}, not {fmt!r}")
    cfg.call_format = fmt or AUTO
    for name in LOAD_LIMITS:  # the same bounds as the options
        try:
            check_load(name, getattr(cfg, name), label=name)
        except SettingError as e:
            raise _Bad(str(e)) from None
    if "sampling" in data:
        cfg.sampling = _sampling(data["sampling"], "[sampling]")
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise _Bad("[aliases] must map names to model references (strings)")
    cfg.aliases = dict(aliases)
    roles = data.get("roles", {})
    if not isinstance(roles, dict):
        raise _Bad("[roles] must be a table of tables")
    for name, table in roles.items():
        where = f"[roles.{name}] "
        if not isinstance(table, dict):
            raise _Bad(f"{where}must be a table")
        _check_keys(table, _ROLE, where)
        schema = table.get("schema")
        if schema is not None and not isinstance(schema, (str, dict)):
            raise _Bad(f"{where}schema must be a file name or an inline table")
        if isinstance(schema, str):
            schema = str((path.parent / Path(schema).expanduser()).resolve())
        tools = table.get("tools", [])
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise _Bad(f"{where}tools must be a list of file names")
        choices = table.get("choices")
        if choices is not None:
            from hermes_cli.core.decision import check_labels

            try:
                choices = check_labels(choices, f"{where}choices")
            except UsageError as e:
                raise _Bad(str(e)) from None
        cfg.roles[name] = Role(name, system=_typed(table, "system", str, where),
                               model=_typed(table, "model", str, where), schema=schema,
                               tools=[str((path.parent / Path(t).expanduser()).resolve()) for t in tools],
                               sampling=_sampling(table["sampling"], f"{where}sampling")
                               if "sampling" in table else {}, choices=choices)
    cfg.mcp = _mcp(data.get("mcp", {}))
    return cfg


def _mcp(data: Any) -> dict[str, ServerSpec]:
    if not isinstance(data, dict):
        raise _Bad("[mcp] must be a table")
    _check_keys(data, {"servers"}, "[mcp] ")
    servers = data.get("servers", {})
    if not isinstance(servers, dict):
        raise _Bad("[mcp.servers] must be a table of tables")
    out = {}
    for name, table in servers.items():
        where = f"[mcp.servers.{name}] "
        if not isinstance(table, dict):
            raise _Bad(f"{where}must be a table")
        _check_keys(table, _MCP_SERVER, where)
        command, url = _typed(table, "command", str, where), _typed(table, "url", str, where)
        if (command is None) == (url is None):
            raise _Bad(f"{where}needs either command (a program to start) or url (a server to reach)")
        args, env_vars, allow = table.get("args", []), table.get("env", {}), table.get("allow", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise _Bad(f"{where}args must be a list of strings")
        if not isinstance(env_vars, dict) or not all(isinstance(v, str) for v in env_vars.values()):
            raise _Bad(f"{where}env must map names to strings")
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise _Bad(f"{where}allow must be a list of tool names")
        timeout = _typed(table, "timeout", (int, float), where)
        if timeout is not None and timeout <= 0:
            raise _Bad(f"{where}timeout must be more than 0 seconds")
        out[name] = ServerSpec(name, command, list(args), dict(env_vars), url, list(allow),
                               float(timeout) if timeout is not None else None)
    return out
