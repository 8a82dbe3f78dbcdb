"""Tools from the user's files: every public function of a Python file, or OpenAI-format
definitions from a JSON file (schemas only)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from hermes_cli import inputs, jsontext
from hermes_cli.errors import UsageError
from hermes_cli.modes.tools.runner import stdout_to_stderr
from hermes_cli.modes.tools.signature import tool_from_function
from hermes_cli.modes.tools.tool import Tool

MAX_TOOLS_FILE = 8 << 20  # bytes: a --tools-json file


def load_tools_file(path: str | Path, *, name: str = "--tools") -> list[Tool]:
    """Every public function defined in a Python file (not imported into it); `name` is
    how the user gave it, for the messages (`--tools`, `/tools`, a role's `tools`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"{name} {path}: no such file")
    module_name = f"hermes_user_tools_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{name} {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with stdout_to_stderr():
            spec.loader.exec_module(module)
    except SystemExit as e:  # sys.exit() at import: it would end hermes, exit status and all
        raise UsageError(f"{name} {path}: importing it called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 - the user's file: one line about it
        raise UsageError(f"{name} {path}: importing it failed: {type(e).__name__}: {e}") from None
    tools = [tool_from_function(obj) for name, obj in vars(module).items()
             if inspect.isfunction(obj) and not name.startswith("_")
             and obj.__module__ == module_name]
    for tool in tools:
        tool.origin = (str(path.resolve()), tool.name)
    if not tools:
        raise UsageError(f"{name} {path}: defines no public function")
    return tools


def load_tools_json(path: str | Path) -> list[Tool]:
    """OpenAI-format definitions (a list, or {"tools": [...]}): schemas only. A FILE, or
    the JSON itself (as `--schema` takes either): text that begins with `[` or `{` is
    never a file name (read as one, it failed with "File name too long")."""
    text = str(path).strip()
    inline = text.startswith(("[", "{"))
    if inline:
        path = "(inline)"
    try:
        raw = text if inline else inputs.read_file(Path(path).expanduser(), MAX_TOOLS_FILE,
                                                   f"--tools-json {path}").decode("utf-8")
        data = jsontext.loads(raw, max_depth=jsontext.SCHEMA_DEPTH)
    except FileNotFoundError:
        raise UsageError(f"--tools-json {path}: no such file") from None
    except jsontext.BadJson as e:
        raise UsageError(f"--tools-json {path}: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--tools-json {path}: cannot read it ({e})") from None
    items = data.get("tools") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise UsageError(f"--tools-json {path}: expected a list of tool definitions")
    tools = []
    for item in items:
        fn = item.get("function", item) if isinstance(item, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UsageError(f"--tools-json {path}: every tool needs a function name")
        tools.append(Tool(fn["name"], fn.get("description", ""),
                          fn.get("parameters") or {"type": "object", "properties": {}}))
    return tools


def load_all(files: list[str] | None, json_file: str | None = None) -> dict[str, Tool]:
    """Every tool from `--tools` files and a `--tools-json` file, by name (unique)."""
    loaded = [t for path in files or [] for t in load_tools_file(path)]
    if json_file:
        loaded += load_tools_json(json_file)
    return check_unique(loaded)


def check_unique(tools: list[Tool]) -> dict[str, Tool]:
    by_name: dict[str, Tool] = {}
    for t in tools:
        if t.name in by_name:
            raise UsageError(f"two tools are named {t.name}")
        by_name[t.name] = t
    return by_name
