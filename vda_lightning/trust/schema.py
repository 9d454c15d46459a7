"""Schemas for what files tell us: JSON documents, checkpoint metadata, saved loader state, sidecars.

A schema is a type (a pydantic model, a TypedDict, `Annotated[int, Field(ge=0)]`, `list[...]`...) checked in
pydantic's strict mode (no "3" for 3, no true for 1) before any value of the document is used; the first problem
becomes ONE line: `<what>: <where in the document>: <what is wrong> (got <value>)`.

JSON is parsed by `parse_json` / `read_json`: size capped first (VDA_MAX_JSON_BYTES), UTF-8, no NaN/Infinity
tokens, nesting bounded, then the schema.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any

from . import limits
from .errors import ReadError
from .paths import display, read_bytes

MAX_DEPTH = 64  # JSON nesting we accept (ours is at most ~6 deep; Python's parser recurses)


def _preview(value: Any, n: int = 60) -> str:
    if isinstance(value, int) and value.bit_length() > 256:  # repr of a 4300-digit int raises
        return f"an integer of {value.bit_length()} bits"
    try:
        text = " ".join(repr(value).split())
    except Exception:  # a value whose repr fails is shown by its type
        text = f"a {type(value).__name__}"
    return text if len(text) <= n else text[: n - 3] + "..."


@functools.lru_cache(maxsize=256)
def _adapter(schema):
    from pydantic import TypeAdapter

    return TypeAdapter(schema)


def validate(schema, value: Any, what: str, error: type[Exception] = ReadError, strict: bool = True) -> Any:
    """`value` checked against `schema` (validated copy: models become instances), or `error` in one line."""
    from pydantic import ValidationError

    try:
        return _adapter(schema).validate_python(value, strict=strict)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        loc = ".".join(display(str(p))[:80] for p in first["loc"]) or "the document"  # keys come from the file
        msg = " ".join(str(first["msg"]).split())
        got = f" (got {_preview(first['input'])})" if first.get("type") != "missing" else ""
        more = f"; {e.error_count() - 1} more problem(s)" if e.error_count() > 1 else ""
        raise error(f"{what}: {loc}: {msg}{got}{more}") from None


def _refuse_constant(token: str):
    raise ValueError(f"{token} is not a JSON number")


def _depth(value: Any, limit: int) -> int:
    stack, deepest = [(value, 1)], 0
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def parse_json(raw: bytes | str, what: str, schema=None, error: type[Exception] = ReadError,
               max_bytes: int | None = None) -> Any:
    """A JSON document from bytes: at most `max_bytes` (default VDA_MAX_JSON_BYTES), UTF-8, standard JSON (no
    NaN/Infinity), nested at most MAX_DEPTH deep, then `schema` when given."""
    cap = limits.max_json_bytes() if max_bytes is None else max_bytes
    if len(raw) > cap:
        raise error(f"{what}: {len(raw):,} bytes of JSON, more than the {cap:,} allowed (VDA_MAX_JSON_BYTES)")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        doc = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise error(f"{what}: not valid JSON ({' '.join(str(e).split())[:160]})") from None
    if _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        raise error(f"{what}: JSON nested more than {MAX_DEPTH} levels deep")
    return doc if schema is None else validate(schema, doc, what, error)


def read_json(path: str | os.PathLike, what: str = "JSON file", schema=None,
              error: type[Exception] = ReadError) -> Any:
    """`parse_json` of a regular file; `what` names its role and the error names the file."""
    raw = read_bytes(path, what, limits.max_json_bytes(), error)
    return parse_json(raw, display(path), schema, error)
