"""Typed `key=value` words, the form W&B sweeps pass with `${args_no_hyphens}`.

Values are parsed by the type annotation of the dataclass field they set, so a sweep's
`lr=0.05` and a user's `milestones=[100,200]` or `milestones=100,200` both work, and a
value of the wrong type is refused with the field's name and the type it needs.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from ..errors import InputError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null"}


def split_words(words: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        key = key.strip().lstrip("-")  # accept --key=value too (W&B's ${args})
        if not sep or not key:
            raise InputError(f"expected key=value, got {word!r}")
        pairs.append((key, value.strip()))
    return pairs


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {type_name(typing.get_args(tp)[0])}s"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if hasattr(tp, "from_text"):
        return "a JSON object"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "none"}.get(tp, str(tp))


def parse_value(key: str, text: str, tp: Any) -> Any:
    """Parse `text` as type `tp` (int, float, bool, str, Literal, tuple[T, ...], Optional)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if hasattr(tp, "from_text"):  # a structured value (spec.Options): JSON
        return tp.from_text(key, text)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in _NONE:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(key, text, arg)
            except ValueError:
                continue
        raise InputError(f"{key}: expected {type_name(tp)}, got {text!r}")
    if origin is typing.Literal:
        for choice in args:
            if text == str(choice) or text.lower() == str(choice).lower():
                return choice
        raise InputError(f"{key}: expected one of {', '.join(map(str, args))}; got {text!r}")
    if origin is tuple:
        inner = args[0]
        body = text.strip()
        if body.startswith("["):
            try:
                items = json.loads(body)
            except json.JSONDecodeError:
                raise InputError(f"{key}: expected {type_name(tp)} like [1,2]; got {text!r}")
            items = [str(i) for i in items]
        else:
            items = [i for i in body.replace(" ", "").split(",") if i]
        return tuple(parse_value(key, item, inner) for item in items)
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise InputError(f"{key}: expected true or false; got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)  # 64e3, 1e5: whole numbers in scientific notation
            except ValueError:
                raise InputError(f"{key}: expected an integer; got {text!r}") from None
            if not value.is_integer():
                raise InputError(f"{key}: expected an integer; got {text!r}")
            return int(value)
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise InputError(f"{key}: expected a number; got {text!r}") from None
    if tp is str:
        return text
    raise TypeError(f"{key}: unsupported field type {tp!r}")


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
