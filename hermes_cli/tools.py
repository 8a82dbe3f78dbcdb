"""Hermes function calling: the user's Python functions as tools, in the exact format
the model was trained on (shared/reference/hermes-formats.md), run safely in a loop.

    system: the Hermes tool prompt with one JSON definition per tool
    assistant: <tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call> (one or more)
    tool: <tool_response>\\n{"name": ..., "content": ...}\\n</tool_response> (one per call)
    ... until the model answers without a call, or the round limit.

Independent of the terminal: the front ends pass an `approve` callback (the REPL asks,
`--yes` approves, a non-interactive run without `--yes` refuses) and a `report` callback.
"""

from __future__ import annotations

import ast
import enum
import importlib.util
import inspect
import json
import multiprocessing
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_cli.errors import UsageError

SYSTEM_PROMPT = (
    "You are a function calling AI model. You are provided with function signatures within "
    "<tools></tools> XML tags. You may call one or more functions to assist with the user "
    "query. Don't make assumptions about what values to plug into functions. Here are the "
    "available tools: <tools> {tools} </tools>Use the following pydantic model json schema "
    "for each tool call you will make: {{\"properties\": {{\"name\": {{\"title\": \"Name\", "
    "\"type\": \"string\"}}, \"arguments\": {{\"title\": \"Arguments\", \"type\": \"object\"}}}}, "
    "\"required\": [\"name\", \"arguments\"], \"title\": \"FunctionCall\", \"type\": \"object\"}}\n"
    "For each function call return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
    "{{\"name\": <function-name>, \"arguments\": <args-dict>}}\n</tool_call>"
)
DEFAULT_MAX_ROUNDS = 5
DEFAULT_TIMEOUT = 30.0


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any] | None = None  # None: a schema from --tools-json

    def definition(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}


# -- schemas from Python signatures -------------------------------------------------------


def _type_schema(annotation: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is inspect.Parameter.empty:
        raise UsageError(f"{where} has no type annotation")
    if origin is typing.Annotated:
        schema = _type_schema(args[0], where)
        for extra in args[1:]:
            if isinstance(extra, str):
                schema["description"] = extra
        return schema
    if annotation is Any:
        return {}
    if annotation is type(None):
        return {"type": "null"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in simple:
        return {"type": simple[annotation]}
    if annotation in (list, tuple, set, frozenset):
        return {"type": "array"}
    if annotation is dict:
        return {"type": "object"}
    if origin in (list, set, frozenset, tuple) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "prefixItems": [_type_schema(a, where) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        return {"type": "array", "items": _type_schema(args[0], where)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], where)} if args else {"type": "object"}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = [_type_schema(a, where) for a in options]
        if len(options) < len(args):
            inner.append({"type": "null"})
        return inner[0] if len(inner) == 1 else {"anyOf": inner}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [m.value for m in annotation]}
    schema_fn = getattr(annotation, "model_json_schema", None)  # pydantic models
    if callable(schema_fn):
        return dict(schema_fn())
    raise UsageError(f"{where}: cannot describe the type {annotation!r} as JSON Schema "
                     "(use str, int, float, bool, list, dict, Literal, Enum, Optional or a "
                     "pydantic model)")


_GOOGLE_ARG = re.compile(r"^\s{2,}(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ARG = re.compile(r"^(\w+)\s*:\s*.*$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {argument: description}) from Google (`Args:`) or NumPy (`Parameters`)
    style docstrings."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary_lines = []
    for line in lines:
        if not line.strip():
            break
        summary_lines.append(line.strip())
    args: dict[str, str] = {}
    i = 0
    while i < len(lines):
        head = lines[i].strip()
        if head in ("Args:", "Arguments:", "Parameters:"):  # Google
            i += 1
            current = None
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                m = _GOOGLE_ARG.match(lines[i])
                indent = len(lines[i]) - len(lines[i].lstrip())
                if m and (current is None or indent <= args.get("__indent__", indent)):  # type: ignore[operator]
                    current = m.group(1).lstrip("*")
                    args[current] = m.group(2).strip()
                    args["__indent__"] = indent  # type: ignore[assignment]
                elif current and lines[i].strip():
                    args[current] = (args[current] + " " + lines[i].strip()).strip()
                i += 1
            continue
        if head == "Parameters" and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:  # NumPy
            i += 2
            current = None
            while i < len(lines) and not (lines[i].strip() and i + 1 < len(lines)
                                           and set(lines[i + 1].strip() or "x") == {"-"}):
                m = _NUMPY_ARG.match(lines[i])
                if m and not lines[i].startswith(" "):
                    current = m.group(1)
                    args[current] = ""
                elif current and lines[i].strip():
                    args[current] = (args[current] + " " + lines[i].strip()).strip()
                i += 1
            continue
        i += 1
    args.pop("__indent__", None)
    return " ".join(summary_lines), args


def tool_from_function(fn: Callable[..., Any]) -> Tool:
    """A Tool whose schema comes from the type hints and whose descriptions come from
    the docstring. Raises UsageError naming the function when it cannot be described."""
    name = fn.__name__
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as e:
        raise UsageError(f"tool {name}: cannot read its signature ({e})") from None
    summary, arg_docs = parse_docstring(fn.__doc__)
    properties: dict[str, Any] = {}
    required = []
    for pname, param in sig.parameters.items():
        where = f"tool {name}, parameter {pname}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise UsageError(f"{where}: *args/**kwargs cannot be described as JSON Schema")
        if param.kind is param.POSITIONAL_ONLY:
            raise UsageError(f"{where}: positional-only parameters cannot be passed by name")
        schema = _type_schema(hints.get(pname, param.annotation), where)
        if pname in arg_docs and arg_docs[pname]:
            schema.setdefault("description", arg_docs[pname])
        if param.default is param.empty:
            required.append(pname)
        else:
            try:
                json.dumps(param.default)
                default = param.default.value if isinstance(param.default, enum.Enum) else param.default
                schema["default"] = default
            except (TypeError, ValueError):
                pass
        properties[pname] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return Tool(name, summary or name, parameters, fn)


def load_tools_file(path: str | Path) -> list[Tool]:
    """Every public function defined in a Python file (not imported into it)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"--tools {path}: no such file")
    module_name = f"hermes_user_tools_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--tools {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's file: one line about it
        raise UsageError(f"--tools {path}: importing it failed: {type(e).__name__}: {e}") from None
    tools = [tool_from_function(obj) for name, obj in vars(module).items()
             if inspect.isfunction(obj) and not name.startswith("_")
             and obj.__module__ == module_name]
    if not tools:
        raise UsageError(f"--tools {path}: defines no public function")
    return tools


def load_tools_json(path: str | Path) -> list[Tool]:
    """OpenAI-format definitions (a list, or {"tools": [...]}): schemas only."""
    try:
        data = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--tools-json {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"--tools-json {path}: not valid JSON ({e})") from None
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


def system_prompt(tools: list[Tool], user_system: str | None = None) -> str:
    text = SYSTEM_PROMPT.format(tools="\n".join(json.dumps(t.definition(), ensure_ascii=False)
                                                for t in tools))
    return f"{text}\n\n{user_system}" if user_system else text


# -- parsing what the model wrote ---------------------------------------------------------

_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class ParsedReply:
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # blocks that are not valid calls

    @property
    def has_calls(self) -> bool:
        return bool(self.calls or self.errors)


def parse_tool_calls(text: str) -> ParsedReply:
    """Every `<tool_call>` block: a regex, not XML (arguments may hold `&` or `<`);
    `json.loads`, then `ast.literal_eval` for Python-style dicts; a missing closing
    tag at the end of the text is accepted."""
    out = ParsedReply()
    for match in _CALL.finditer(text):
        body = match.group(1).strip()
        if not body:
            out.errors.append("an empty <tool_call> block")
            continue
        try:
            obj = json.loads(body)
        except ValueError:
            try:
                obj = ast.literal_eval(body)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                out.errors.append(f"not valid JSON: {body[:200]}")
                continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            out.errors.append(f"a call needs a \"name\" and \"arguments\": {body[:200]}")
            continue
        args = obj.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                out.errors.append(f"the arguments of {obj['name']} are not a JSON object")
                continue
        if not isinstance(args, dict):
            out.errors.append(f"the arguments of {obj['name']} are not a JSON object")
            continue
        out.calls.append(ToolCall(obj["name"], args))
    return out


# -- running calls ------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Results go back as JSON; anything else is stringified."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def _child(fn: Callable[..., Any], arguments: dict[str, Any], conn: Any) -> None:
    try:
        conn.send(("ok", json.dumps(_jsonable(fn(**arguments)))))
    except BaseException as e:  # noqa: BLE001 - reported to the model, not raised here
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def run_call(tool: Tool, arguments: dict[str, Any], timeout: float) -> tuple[bool, Any]:
    """Run one call in a child process, so a tool that hangs can be stopped.

    Returns (ok, content): the result, or an error message for the model.
    """
    assert tool.function is not None
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = multiprocessing.get_context(method)
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(tool.function, arguments, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            proc.kill()
            return False, f"the tool {tool.name} did not finish within {timeout:g} s and was stopped"
        status, payload = parent.recv()
    except EOFError:
        return False, f"the tool {tool.name} exited without a result"
    finally:
        proc.join(5)
        parent.close()
    return (True, json.loads(payload)) if status == "ok" else (False, payload)


def validate_arguments(tool: Tool, arguments: dict[str, Any]) -> list[str]:
    from hermes_cli.jsonmode import validation_errors

    return validation_errors(arguments, tool.parameters)


def response_block(name: str, content: Any) -> str:
    return "<tool_response>\n" + json.dumps({"name": name, "content": content},
                                            ensure_ascii=False) + "\n</tool_response>"


# -- grammar for forced calls -------------------------------------------------------------


def forced_call_grammar(tools: list[Tool], opening: str = "<tool_call>\n") -> str:
    """GBNF for exactly one `<tool_call>` to one of `tools`, with schema-valid arguments.

    `opening` is what the grammar writes before the JSON: the whole tag for a forced
    call, or the rest of it when the model has already begun the tag itself.
    """
    from hermes_cli.engine import json_schema_to_gbnf

    schema = {"anyOf": [{"type": "object", "properties": {
        "name": {"const": t.name}, "arguments": t.parameters}, "required": ["name", "arguments"],
        "additionalProperties": False} for t in tools]}
    if len(tools) == 1:
        schema = schema["anyOf"][0]
    gbnf = json_schema_to_gbnf(schema)
    gbnf = re.sub(r"^root ::=", "call ::=", gbnf, flags=re.MULTILINE)
    literal = json.dumps(opening)  # a GBNF string literal is JSON-escaped text
    return f'root ::= {literal} call "\\n</tool_call>"\n' + gbnf
