"""Options: the typed, validated settings of a piece (a frozen dataclass) and its field helpers.

A piece declares its settings as dataclass fields made by :func:`knob` or :func:`static`:

    bandwidth: float = knob(0.2, "kernel width", gt=0)
    K: int = static(2, "candidates per kept row", ge=1)

``knob`` fields are numeric settings that do not change shapes: the engine reads them as array
leaves (:func:`knob_values`), so they can be swept inside one compiled program (vmapped).
``static`` fields change shapes or code paths: a sweep over one compiles one program per value.
Declared ranges (``ge``, ``gt``, ``le``, ``lt``) are checked by :func:`parse`; a class's own
``validate(path)`` checks only what involves several fields. Nothing here touches JAX.

Every invalid value raises :class:`scl.errors.ConfigError` naming the field, e.g.
``loop.real_fraction: must be in [0, 1], got 1.5``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import field
from typing import Any, Literal

from scl.errors import ConfigError


# ----------------------------------------------------------------------------- declaring fields

def knob(default, doc: str = "", *, ge=None, gt=None, le=None, lt=None, finite: bool = True):
    """A numeric field that may be swept inside one compiled program (vmapped); NaN and (unless
    ``finite=False``) infinities are refused."""
    return field(default=default, metadata=_meta(doc, ge, gt, le, lt, finite, knob=True))


def static(default, doc: str = "", *, ge=None, gt=None, le=None, lt=None, finite: bool = False):
    """A setting that fixes shapes or code paths (a sweep over it compiles one program a value)."""
    return field(default=default, metadata=_meta(doc, ge, gt, le, lt, finite))


def _meta(doc, ge, gt, le, lt, finite, knob=False) -> dict:
    meta = {"doc": doc, "finite": finite}
    if knob:
        meta["knob"] = True
    for name, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)):
        if value is not None:
            meta[name] = value
    return meta


@functools.lru_cache(maxsize=None)
def type_hints(cls) -> dict:
    """typing.get_type_hints(cls), computed once per class (a sweep builds many configs)."""
    return typing.get_type_hints(cls)


def is_knob(cls, name: str) -> bool:
    return any(f.name == name and f.metadata.get("knob") for f in dataclasses.fields(cls))


def knob_values(options) -> dict:
    """{name: float} of the knob fields of ``options`` (None reads as 0), plus what its
    ``derived_knobs()`` computes from them: the numbers the compiled step reads."""
    out = {f.name: float(getattr(options, f.name) or 0.0)
           for f in dataclasses.fields(options) if f.metadata.get("knob")}
    if hasattr(options, "derived_knobs"):
        out.update(options.derived_knobs())
    return out


# ----------------------------------------------------------------------------- ranges

def check_range(path, value, lo=None, hi=None, lo_open=False, hi_open=False):
    """ConfigError naming ``path`` unless ``value`` (None passes) lies in the interval."""
    if value is None:
        return
    bad = (lo is not None and (value < lo or (lo_open and value == lo))) or \
          (hi is not None and (value > hi or (hi_open and value == hi))) or \
          (isinstance(value, float) and math.isnan(value))
    if bad:
        if isinstance(value, int) and hi is None and lo is not None:     # counts: "must be >= 1"
            raise ConfigError(path, f"must be {'>' if lo_open else '>='} {lo:g}, got {_num(value)}")
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo}" if isinstance(lo, int) else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi}" if isinstance(hi, int) else f"{hi:g}"
        raise ConfigError(path, f"must be in {left}{lo_s}, {hi_s}{right}, got {_num(value)}")


def _num(value) -> str:
    """A number for an error line (a 300-digit integer shown as 1e+300)."""
    if isinstance(value, int) and abs(value) >= 10**15:
        try:
            return f"{float(value):.3g}"
        except OverflowError:
            return "a number with more than 300 digits"
    return str(value)


def check_declared(f: dataclasses.Field, value, path: str) -> None:
    """The range and finiteness a field declares, applied to its value (and a tuple's items)."""
    if isinstance(value, tuple):
        for i, v in enumerate(value):
            check_declared(f, v, f"{path}[{i}]")
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    m = f.metadata
    if isinstance(value, float) and (math.isnan(value) or (m.get("finite") and math.isinf(value))):
        raise ConfigError(path, f"must be a finite number, got {value}")
    lo = m.get("ge", m.get("gt"))
    hi = m.get("le", m.get("lt"))
    check_range(path, value, lo, hi, lo_open="gt" in m, hi_open="lt" in m)


# ----------------------------------------------------------------------------- parsing

def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "list"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value, tp, path: str):
    """Convert a YAML value to the annotated type ``tp`` or raise ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, path)
            except ConfigError:
                pass
        raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(path, f"must be one of {', '.join(map(str, allowed))}; got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(path, f"expected a list of {len(args)} items, got {len(value)}")
        return tuple(coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
                if f.is_integer():
                    return int(f)
            except ValueError:
                pass
        raise ConfigError(path, f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(path, f"expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(path, f"expected a number, got {value!r}")
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, path)
    raise TypeError(f"unsupported option type {tp!r} at {path}")


def parse(cls, data, path: str):
    """Build options ``cls`` from a mapping: keys, types, declared ranges, then ``validate``."""
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = to_dict(data)            # built in Python: checked like YAML input
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping of settings, got {data!r}")
    hints = type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    tag = getattr(cls, "tag_key", None)
    for key in data:
        if key not in fields and key != tag:
            raise ConfigError(join(path, key), f"unknown key; allowed: {', '.join(fields)}")
    kwargs = {}
    for k, v in data.items():
        if k == tag:
            continue
        kwargs[k] = coerce(v, hints[k], join(path, k))
        check_declared(fields[k], kwargs[k], join(path, k))
    obj = cls(**kwargs)
    for k, f in fields.items():          # defaults obey the declared ranges too
        if k not in kwargs:
            check_declared(f, getattr(obj, k), join(path, k))
    if hasattr(obj, "validate"):
        obj.validate(path)
    return obj


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def to_dict(obj) -> dict:
    """Plain YAML-ready dict of an options dataclass (tagged sections keep their tag)."""
    out = {}
    tag = getattr(obj, "tag_key", None)
    if tag:
        out[tag] = obj.name
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = untuple(v)
        out[f.name] = v
    return out


def untuple(v):
    if isinstance(v, tuple):
        return [untuple(x) for x in v]
    return v
