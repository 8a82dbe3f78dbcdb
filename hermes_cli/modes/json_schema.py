"""JSON Schemas from the user: loading (a file, inline JSON, or a pydantic model),
checking that we can enforce them, and validating answers against them (all drafts,
$ref resolution, format checks) with the jsonschema library."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hermes_cli import jsontext
from hermes_cli.errors import UsageError

_PYDANTIC_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_schema(spec: str, *, cwd: Path | None = None, name: str = "--schema") -> tuple[dict[str, Any], str]:
    """Parse `--schema`: a file, inline JSON, or `module:Model` (a pydantic model);
    return the schema and where it came from.

    Raises:
        UsageError: not JSON, not a valid JSON Schema, a remote `$ref`, or an import
            that fails; all before any model is loaded.
    """
    cwd = cwd or Path.cwd()
    text = spec.strip()
    if text.startswith("{"):
        schema, source = _parse_json(text, f"{name} (inline)"), f"{name} (inline)"
    elif (cwd / text).is_file():
        path = cwd / text
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{name} {text}: cannot read it: {e}") from None
        schema, source = _parse_json(raw, text), text
    elif _PYDANTIC_PATH.match(text):
        schema, source = _pydantic_schema(text, cwd, name), text
    else:
        raise UsageError(f"{name} {text!r}: no such file, and not inline JSON or module:Model")
    check_schema(schema, source)
    return schema, source


def _parse_json(text: str, source: str) -> Any:
    try:
        return jsontext.loads(text, max_depth=jsontext.SCHEMA_DEPTH)
    except jsontext.BadJson as e:
        raise UsageError(f"{source}: {e}") from None


def _pydantic_schema(path: str, cwd: Path, name: str) -> dict[str, Any]:
    module_name, _, attr = path.partition(":")
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as e:
        raise UsageError(f"{name} {path}: cannot import {module_name}: {e}") from None
    except AttributeError:
        raise UsageError(f"{name} {path}: {module_name} has no {attr}") from None
    except Exception as e:  # the user's module raised while importing
        raise UsageError(f"{name} {path}: importing {module_name} failed: "
                         f"{type(e).__name__}: {e}") from None
    to_schema = getattr(obj, "model_json_schema", None)
    if not callable(to_schema):
        raise UsageError(f"{name} {path}: {attr} is not a pydantic model")
    return dict(to_schema())


def check_schema(schema: Any, source: str) -> None:
    """A schema we can enforce: a JSON Schema object, local references only."""
    if not isinstance(schema, dict):
        raise UsageError(f"{source}: a JSON Schema must be an object, not {type(schema).__name__}")
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise UsageError(f"{source}: remote $ref {ref!r} is not supported; "
                             "copy it under $defs and use '#/$defs/…'")
    from jsonschema import exceptions, validators

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "top level"
        raise UsageError(f"{source}: not a valid JSON Schema ({where}): {e.message}") from None


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def validation_errors(obj: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `obj` breaks `schema` (formats checked), as short readable lines."""
    from jsonschema import validators

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
