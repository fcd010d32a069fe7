"""Settings as dataclass fields: one name, one default, one help text and its bounds, in one place.

Every task config and network config declares its fields with :func:`opt`::

    hidden_size: int = opt(64, "hidden units per direction", min=1, max=8192)

From that one declaration the CLI generates ``--hidden-size`` (help and default included,
``rnnkit.cli.common``), ``config.json`` stores ``"hidden_size"``, and :func:`from_dict` checks a
loaded or user-given value (type, bounds, choices) before anything is built, so a model folder
with ``"num_layers": 1000000000`` or ``"hidden_size": "x"`` is a one-line error, not a hang.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable, Mapping, Optional, Sequence

from rnnkit.errors import UserError


def opt(default: Any, help: str, *, min: Optional[float] = None, max: Optional[float] = None,
        choices: Optional[Sequence[Any]] = None, flag: bool = True) -> Any:
    """A dataclass field with its help text and bounds. ``flag=False``: not a CLI flag (set from data)."""
    meta = {"help": help, "min": min, "max": max, "choices": tuple(choices) if choices else None, "flag": flag}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_type(cls: type, name: str) -> tuple[type, bool]:
    """(base type, optional) of field ``name``: ``Optional[int]`` -> (int, True); ``tuple[float, ...]`` -> (tuple, False)."""
    hint = typing.get_type_hints(cls)[name]
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
        origin = typing.get_origin(hint)
    return (origin or hint), optional


def _coerce(value: Any, kind: type, name: str, where: str) -> Any:
    bad = UserError(f"{where}: {name} must be {kind.__name__}, got {value!r}"[:300])
    if kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if kind is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise bad
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise bad
        return value
    if kind in (tuple, list):
        if not isinstance(value, (list, tuple)) or len(value) > 10_000:
            raise bad
        return kind(value)
    return value


def check_value(cls: type, f: dataclasses.Field, value: Any, where: str, label: Optional[str] = None) -> Any:
    """Type-, bound- and choice-checked ``value`` for field ``f`` of ``cls``; UserError otherwise.
    ``label``: how the message names the setting (default: the field name; the CLI passes its flag)."""
    kind, optional = field_type(cls, f.name)
    name = label or f.name
    if value is None:
        if optional:
            return None
        raise UserError(f"{where}: {name} must be set (got null)")
    value = _coerce(value, kind, name, where)
    lo, hi, choices = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("choices")
    items = value if isinstance(value, (tuple, list)) else (value,)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if (lo is not None and v < lo) or (hi is not None and v > hi) or not math.isfinite(v):
            span = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
            raise UserError(f"{where}: {name} = {v!r} is outside {span}")
    if choices is not None and value not in choices:
        raise UserError(f"{where}: {name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def validate(obj: Any, where: str = "config") -> Any:
    """Check every field of dataclass instance ``obj`` in place (coerced values written back); returns it."""
    for f in dataclasses.fields(obj):
        object.__setattr__(obj, f.name, check_value(type(obj), f, getattr(obj, f.name), where))
    return obj


def from_dict(cls: type, data: Any, where: str, ignore_unknown: bool = False,
              label: Optional[Callable[[str], str]] = None) -> Any:
    """Build dataclass ``cls`` from a JSON object, checking every value; UserError names ``where``
    (and each setting as ``label(name)`` when given)."""
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a JSON object of settings, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown and not ignore_unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(map(str, unknown[:5]))}")
    missing = [n for n, f in known.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"{where}: missing setting(s) {', '.join(missing)}")
    values = {n: check_value(cls, known[n], v, where, label(n) if label else None) for n, v in data.items() if n in known}
    return cls(**values)


def shared_fields(source: Any, target_cls: type) -> dict[str, Any]:
    """The values of ``source`` (a dataclass) for the fields ``target_cls`` has under the same name:
    a network config takes its architecture settings from the task config by name, never by hand."""
    names = {f.name for f in dataclasses.fields(target_cls)}
    return {f.name: getattr(source, f.name) for f in dataclasses.fields(source) if f.name in names}


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a dataclass (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(obj).items()}
