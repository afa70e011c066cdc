"""The job config's JSON Schema, generated from its dataclasses, and the one-line errors it gives.

The jobs check each config tree against the schema generated at run time; the same schema is
checked in as job.schema.json for editors (`python -m synapse_ml_track.config` rewrites it: the job
config is config's, and this module knows no config of its own), and a test keeps the two equal.
Draft 7: what jsonschema 4.23 (the Synapse runtime's) and the common YAML editors all support.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from synapse_ml_track.errors import ConfigError

SCHEMA_FILE = Path(__file__).with_name("job.schema.json")
DRAFT = "http://json-schema.org/draft-07/schema#"

_SCALAR_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of names to values",
}


def dataclass_schema(
    cls: type,
    choices: Mapping[str, Collection[str]] | None = None,
    ranges: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """The schema of a tree of config dataclasses; `choices` maps a dotted key to the values it takes,
    `ranges` a numeric key to its bounds (minimum, maximum, exclusiveMinimum, exclusiveMaximum).

    A field type with no JSON Schema here (a Path, a set, a class) is a TypeError, not a pass.
    """
    choices, ranges = dict(choices or {}), dict(ranges or {})
    schema = {"$schema": DRAFT, **({"title": title} if title else {}), **_section(cls, choices, ranges, prefix="")}
    schema["type"] = "object"  # only sections below the top may be left empty (null) in a file
    if choices or ranges:
        raise TypeError(f"choices or ranges name no config key: {', '.join(sorted({*choices, *ranges}))}")
    return schema


def schema_text(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"


def _section(
    cls: type, choices: dict[str, Collection[str]], ranges: dict[str, Mapping[str, float]], prefix: str
) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    properties = {}
    for field in dataclasses.fields(cls):
        dotted, hint = f"{prefix}{field.name}", hints[field.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            value = _section(hint, choices, ranges, prefix=f"{dotted}.")
        else:
            value = {**_value_schema(hint, dotted), "default": _default(field)}
            if dotted in choices:
                nullable = "null" in _types(value)
                value["enum"] = [*choices.pop(dotted), *([None] if nullable else [])]
            if dotted in ranges:
                value.update(ranges.pop(dotted))
        if field.name in comments:
            value["description"] = comments[field.name]
        properties[field.name] = value
    section: dict[str, Any] = {"type": ["object", "null"]}
    docstring = cls.__doc__ or ""
    if not docstring.startswith(f"{cls.__name__}("):  # not the signature dataclass() writes when there is none
        section["description"] = " ".join(docstring.split())
    return {**section, "additionalProperties": False, "properties": properties}


def _value_schema(hint: Any, dotted: str) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return {}
    if hint in _SCALAR_TYPES:
        return {"type": _SCALAR_TYPES[hint]}
    if origin is list:
        return {"type": "array", "items": _value_schema(args[0], f"{dotted}[]")}
    if origin is dict and args[0] is str:
        return {"type": "object", "additionalProperties": _value_schema(args[1], f"{dotted}.*")}
    if origin in (typing.Union, types.UnionType):
        branches = [_value_schema(arg, dotted) for arg in args if arg is not type(None)]
        schema: dict[str, Any] = branches[0] if len(branches) == 1 else {"anyOf": branches}
        if type(None) in args and "type" in schema:
            schema["type"] = [schema["type"], "null"]
        elif type(None) in args and "anyOf" in schema:
            schema["anyOf"].append({"type": "null"})
        return schema
    raise TypeError(
        f"config key '{dotted}' has type {hint!r}: no JSON Schema for it; use str, int, float, bool, Any, "
        "list, dict[str, ...], a union of those, or a config dataclass"
    )


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is dataclasses.MISSING:
        raise TypeError(f"config key '{field.name}' has no default; every config key needs one")
    return field.default_factory()


def _field_comments(cls: type) -> dict[str, str]:
    """Each field's trailing comment in the class's source (`max_categories: int = 100  # warn when ...`)."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        field = re.match(r"\s*(\w+)\s*:", token.line)
        if token.type == tokenize.COMMENT and field:
            comments[field.group(1)] = token.string.lstrip("#").strip()
    return comments


def check(tree: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The tree, its flag and environment strings read as their keys' types; ConfigError names the first
    key the schema refuses, in one line."""
    coerced: dict[str, Any] = _coerced(tree, schema)  # a mapping comes back a dict
    error = next(Draft7Validator(schema).iter_errors(coerced), None)
    if error is not None:
        raise ConfigError(_message(error))
    return coerced


def _boolean(text: str) -> bool:
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in words:
        raise ValueError(text)
    return words[text.lower()]


# What a string from a flag, the environment or --set is read as, for a key of each type.
_FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "integer": int,
    "number": float,
    "boolean": _boolean,
    "array": lambda text: [item.strip() for item in text.split(",") if item.strip()],  # "id, f1" is two names
}


def _coerced(value: Any, schema: Mapping[str, Any]) -> Any:
    accepted = _types(schema)
    is_type = Draft7Validator.TYPE_CHECKER.is_type
    if accepted and not any(is_type(value, kind) for kind in accepted):
        value = _converted(value, accepted)
    numeric = set(accepted) - {"null"}
    if numeric == {"integer"} and isinstance(value, float) and value.is_integer():
        value = int(value)  # 3.0 for an integer key
    elif numeric == {"number"} and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, list):
        items = _branch(schema, "array").get("items", {})
        return [_coerced(item, items) for item in value]
    if isinstance(value, Mapping) and accepted:
        branch = _branch(schema, "object")
        properties, others = branch.get("properties", {}), branch.get("additionalProperties") or {}
        return {str(key): _coerced(item, properties.get(key, others)) for key, item in value.items()}
    return value


def _converted(value: Any, accepted: list[str]) -> Any:
    if isinstance(value, str):
        for kind in accepted:
            try:
                return _FROM_TEXT[kind](value)
            except (KeyError, ValueError):
                continue
    if isinstance(value, tuple) and "array" in accepted:
        return list(value)
    # YAML reads a bare timestamp (`data.timestamp=2026-01-01 10:00:00`) as a date or datetime.
    if isinstance(value, (bool, int, float, datetime.date)) and "string" in accepted:
        return str(value)
    return value


def _types(schema: Mapping[str, Any]) -> list[str]:
    if "anyOf" in schema:
        return [kind for branch in schema["anyOf"] for kind in _types(branch)]
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _branch(schema: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The part of a (union) schema that describes values of one JSON type."""
    branches: list[Mapping[str, Any]] = schema.get("anyOf", [schema])
    for branch in branches:
        if kind in _types(branch):
            return branch
    return {}


def closest_key(unknown: str, known: list[str]) -> str | None:
    """The known key `unknown` is most likely a typo of: two letters swapped first (difflib ranks
    'data.table' above 'data.label' for 'lable'), else difflib's closest."""
    swapped = [key for key in known if _one_swap_apart(unknown, key)]
    if swapped:
        return swapped[0]
    close = difflib.get_close_matches(unknown, known, n=1)
    return close[0] if close else None


def _one_swap_apart(a: str, b: str) -> bool:
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    return (
        len(a) == len(b)
        and len(differ) == 2
        and differ[1] == differ[0] + 1
        and a[differ[0]] == b[differ[1]]
        and a[differ[1]] == b[differ[0]]
    )


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def bounds_text(schema: Mapping[str, Any]) -> str:
    """A key's range in words: "at least 2", "above 0", "between 0 and 10", "between 0 and 1 (exclusive)"."""
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    exclusive = "exclusiveMinimum" in schema or "exclusiveMaximum" in schema
    if low is not None and high is not None:
        return f"between {low} and {high}" + (" (exclusive)" if exclusive else "")
    if low is not None:
        return f"above {low}" if "exclusiveMinimum" in schema else f"at least {low}"
    return f"below {high}" if "exclusiveMaximum" in schema else f"at most {high}"


def _message(error: ValidationError) -> str:
    dotted = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)[1:]
    if error.validator == "additionalProperties":
        known = sorted(error.schema["properties"])
        unknown = next(str(key) for key in error.instance if key not in error.schema["properties"])
        prefix = f"{dotted}." if dotted else ""
        close = closest_key(unknown, known)
        hint = f" (did you mean '{prefix}{close}'?)" if close else f" (known keys: {', '.join(known)})"
        return f"unknown config key '{prefix}{unknown}'{hint}"
    if error.validator in _BOUNDS:
        return f"config key '{dotted}' must be {bounds_text(error.schema)}, got {error.instance!r}"
    if error.validator == "enum":
        allowed = ", ".join(str(value) for value in error.validator_value if value is not None)
        return f"config key '{dotted}' must be one of {allowed}, got {error.instance!r}"
    if "properties" in error.schema:
        return f"config section {dotted} must be a mapping, got {error.instance!r}"
    expected = " or ".join(_EXPECTED[kind] for kind in _types(error.schema) if kind != "null")
    return f"config key '{dotted}' must be {expected}, got {error.instance!r}"
