"""A Python function -> a Tool whose JSON Schema comes from its type hints."""

from __future__ import annotations

import enum
import inspect
import json
import types
import typing
from collections.abc import Callable
from typing import Any

from hermes_cli.errors import UsageError
from hermes_cli.modes.tools.docstrings import parse_docstring
from hermes_cli.modes.tools.tool import Tool


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
    defs: dict[str, Any] = {}
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
        properties[pname] = _hoist_defs(schema, defs)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    if defs:
        parameters["$defs"] = defs
    return Tool(name, summary or name, parameters, fn)


def _hoist_defs(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic model's schema brings its own `$defs`, with `$ref`s to "#/$defs/X": as a
    property they must live at the root of the parameters (renamed if two models clash)."""
    local = schema.pop("$defs", None)
    if not local:
        return schema
    renames = {}
    for def_name in local:
        new = def_name
        while new in defs and defs[new] != local[def_name]:
            new += "_"
        renames[f"#/$defs/{def_name}"] = f"#/$defs/{new}"

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (renames.get(v, v) if k == "$ref" and isinstance(v, str) else rewrite(v))
                    for k, v in node.items()}
        return [rewrite(v) for v in node] if isinstance(node, list) else node

    for def_name, sub in local.items():
        defs[renames[f"#/$defs/{def_name}"].rsplit("/", 1)[1]] = rewrite(sub)
    out = rewrite(schema)
    assert isinstance(out, dict)
    return out
