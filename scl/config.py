"""Typed, frozen, validated experiment configs; YAML in, YAML out.

A config is a tree of frozen dataclasses. Fields marked ``knob()`` are numeric settings that do not
change shapes: they can be swept *inside* one compiled program (vmapped). Every other field is
static: sweeping it compiles one program per value and joins the results.

Every invalid input raises :class:`scl.errors.ConfigError` naming the field, e.g.
``loop.real_fraction: must be in [0, 1], got 1.5``.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from scl import registry
from scl.errors import ConfigError


# ----------------------------------------------------------------------------- field helpers


@functools.lru_cache(maxsize=None)
def type_hints(cls) -> dict:
    """typing.get_type_hints(cls), computed once per class (a sweep builds many configs)."""
    return typing.get_type_hints(cls)


def knob(default, doc: str = ""):
    """A numeric field that may be swept inside one compiled program (vmapped)."""
    return field(default=default, metadata={"knob": True, "doc": doc})


def static(default, doc: str = ""):
    return field(default=default, metadata={"doc": doc})


def is_knob(cls, name: str) -> bool:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return bool(f.metadata.get("knob"))
    return False


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
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, path)
            except ConfigError as e:
                errors.append(e.message)
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
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def parse(cls, data, path: str):
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping of settings, got {data!r}")
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    tag = getattr(cls, "tag_key", None)
    for key in data:
        if key not in names and key != tag:
            raise ConfigError(_join(path, key), f"unknown key; allowed: {', '.join(names)}")
    kwargs = {k: coerce(v, hints[k], _join(path, k)) for k, v in data.items() if k != tag}
    obj = cls(**kwargs)
    obj.validate(path) if hasattr(obj, "validate") else None
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def to_dict(obj) -> dict:
    """Plain YAML-ready dict of a config dataclass (tagged sections keep their tag)."""
    out = {}
    tag = getattr(obj, "tag_key", None)
    if tag:
        out[tag] = obj.name
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = _untuple(v)
        out[f.name] = v
    return out


def _untuple(v):
    if isinstance(v, tuple):
        return [_untuple(x) for x in v]
    return v


def check_range(path, value, lo=None, hi=None, lo_open=False, hi_open=False):
    if value is None:
        return
    bad = (lo is not None and (value < lo or (lo_open and value == lo))) or \
          (hi is not None and (value > hi or (hi_open and value == hi))) or \
          (isinstance(value, float) and math.isnan(value))
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ConfigError(path, f"must be in {left}{lo_s}, {hi_s}{right}, got {value}")


# ----------------------------------------------------------------------------- sections

@dataclass(frozen=True)
class LoopConfig:
    """How each generation's training set is built (see README, 'Mixing conventions')."""

    generations: int = static(100, "generations after generation 0 (the fit on real data)")
    n: int = static(100, "real sample size: generation 0 fits n real rows; also the training size")
    synthetic_size: Optional[int] = static(
        None, "synthetic rows per generation (replace, fresh: ignored, = n; accumulate*: default n)")
    regime: Literal["replace", "fresh", "fixed_real", "accumulate", "accumulate_subsample"] = static(
        "replace", "mixing regime")
    real_fraction: Optional[float] = knob(
        None, "share of real rows in each generation's training set (fresh, fixed_real)")
    lam: Optional[float] = knob(None, "fixed_real: #synthetic / #real (Bertrand et al. lambda)")

    def validate(self, path):
        if self.generations < 1:
            raise ConfigError(_join(path, "generations"), f"must be >= 1, got {self.generations}")
        if self.n < 2:
            raise ConfigError(_join(path, "n"), f"must be >= 2, got {self.n}")
        if self.synthetic_size is not None and self.synthetic_size < 1:
            raise ConfigError(_join(path, "synthetic_size"), f"must be >= 1, got {self.synthetic_size}")
        check_range(_join(path, "real_fraction"), self.real_fraction, 0.0, 1.0)
        check_range(_join(path, "lam"), self.lam, 0.0)
        if self.lam is not None and math.isinf(self.lam):
            raise ConfigError(_join(path, "lam"), "must be finite (use regime: replace for fully synthetic)")
        if self.regime == "fresh" and self.real_fraction is None:
            raise ConfigError(_join(path, "real_fraction"), "regime 'fresh' needs a real_fraction in [0, 1]")
        if self.regime == "fixed_real":
            if (self.real_fraction is None) == (self.lam is None):
                raise ConfigError(_join(path, "lam"),
                                  "regime 'fixed_real' needs exactly one of lam (>= 0) or real_fraction (> 0)")
            if self.real_fraction is not None and self.real_fraction == 0.0:
                raise ConfigError(_join(path, "real_fraction"),
                                  "must be > 0 under fixed_real (lambda = (1-f)/f); use regime: replace")

    @property
    def synthetic_rows(self) -> int:
        if self.regime in ("replace", "fresh"):
            return self.n
        return self.synthetic_size or self.n

    @property
    def lam_value(self) -> float:
        """lambda = #synthetic/#real, from lam or real_fraction f as (1 - f) / f."""
        if self.lam is not None:
            return self.lam
        f = self.real_fraction
        return (1.0 - f) / f

    def knob_values(self) -> dict:
        """The numeric values the compiled step reads (swept or not)."""
        return {
            "real_fraction": 0.0 if self.real_fraction is None else self.real_fraction,
            "lam": self.lam_value if self.regime == "fixed_real" else 0.0,
        }


@dataclass(frozen=True)
class MetricsConfig:
    names: tuple[str, ...] = static(("w2", "mean_sqerr", "trace_ratio", "logdet_ratio", "sliced_w2"),
                                    "metrics taken every generation")
    samples: int = static(512, "samples drawn from the model and from the truth for sample-based metrics")
    projections: int = static(64, "random directions for sliced Wasserstein")
    mmd_bandwidth: float = static(1.0, "Gaussian-kernel bandwidth for mmd")
    sinkhorn_epsilon: float = static(0.05, "entropic regularisation for sinkhorn (ott-jax)")
    mode_share: float = static(0.02, "modes_covered: a true mode counts when it holds at least this "
                               "share of the model's samples")

    def validate(self, path):
        if self.samples < 2:
            raise ConfigError(_join(path, "samples"), f"must be >= 2, got {self.samples}")
        if self.projections < 1:
            raise ConfigError(_join(path, "projections"), f"must be >= 1, got {self.projections}")
        check_range(_join(path, "mmd_bandwidth"), self.mmd_bandwidth, 0.0, lo_open=True)
        check_range(_join(path, "sinkhorn_epsilon"), self.sinkhorn_epsilon, 0.0, lo_open=True)
        check_range(_join(path, "mode_share"), self.mode_share, 0.0, 1.0, lo_open=True)
        registry.load_builtin()
        for i, name in enumerate(self.names):
            if name not in registry.METRICS:
                raise ConfigError(f"{_join(path, 'names')}[{i}]",
                                  f"unknown metric {name!r}; allowed: {', '.join(sorted(registry.METRICS))}")


@dataclass(frozen=True)
class RunConfig:
    chunk_size: int = static(10, "generations per compiled chunk (progress/checkpoint granularity)")
    progress: bool = static(True, "show a progress bar")
    config_batch_size: Optional[int] = static(
        None, "configurations computed at once (lax.map over slices of a vmap; same results); "
              "default: the whole grid in one vmap")

    def validate(self, path):
        if self.chunk_size < 1:
            raise ConfigError(_join(path, "chunk_size"), f"must be >= 1, got {self.chunk_size}")
        if self.config_batch_size is not None and self.config_batch_size < 1:
            raise ConfigError(_join(path, "config_batch_size"), f"must be >= 1, got {self.config_batch_size}")


@dataclass(frozen=True)
class CheckpointConfig:
    """``checkpoint:`` per-chunk orbax checkpoints when a run writes into an output folder."""

    enabled: bool = static(True, "save a checkpoint after every chunk (runs with an output folder)")
    stride: int = static(1, "keep the model state of every stride-th generation (0: none)")
    keep: int = static(2, "full loop states kept, newest first (older ones deleted)")
    asynchronous: bool = static(True, "write in a background thread, overlapping the next chunk")

    def validate(self, path):
        if self.stride < 0:
            raise ConfigError(_join(path, "stride"), f"must be >= 0, got {self.stride}")
        if self.keep < 1:
            raise ConfigError(_join(path, "keep"), f"must be >= 1, got {self.keep}")


def _tagged(table_name: str, tag_key: str, data, path: str, default_name: str):
    """Parse a section whose class is chosen by a tag (``truth.kind``, ``model.family``)."""
    registry.load_builtin()
    table = getattr(registry, table_name)
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data):
        data = to_dict(data)  # built in Python: check types and ranges like YAML input
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping of settings, got {data!r}")
    name = data.get(tag_key, default_name)
    if name not in table:
        raise ConfigError(_join(path, tag_key), f"unknown {tag_key} {name!r}; allowed: {', '.join(sorted(table))}")
    return parse(table[name].options, data, path)


@dataclass(frozen=True)
class Config:
    """A whole experiment. Build from YAML with :func:`load_config` or directly in Python."""

    name: str = "experiment"
    seed: int = 0
    seeds: int = 8
    truth: Any = None
    model: Any = None
    loop: LoopConfig = LoopConfig()
    metrics: MetricsConfig = MetricsConfig()
    sweep: Any = ()
    run: RunConfig = RunConfig()
    curation: Any = None     # optional: scl.curation (tag ``rule``)
    correction: Any = None   # optional: scl.correction (tag ``kind``)
    checkpoint: CheckpointConfig = CheckpointConfig()

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "truth", _tagged("SOURCES", "kind", self.truth, "truth", "gaussian"))
        set_(self, "model", _tagged("FAMILIES", "family", self.model, "model", "gaussian"))
        set_(self, "sweep", _parse_sweep(self.sweep))
        for name, cls in (("loop", LoopConfig), ("metrics", MetricsConfig), ("run", RunConfig),
                          ("checkpoint", CheckpointConfig)):
            value = getattr(self, name)
            set_(self, name, parse(cls, to_dict(value) if isinstance(value, cls) else value, name))
        if self.curation is not None:
            set_(self, "curation", _tagged("CURATORS", "rule", self.curation, "curation", "luce"))
        if self.correction is not None:
            set_(self, "correction", _tagged("CORRECTORS", "kind", self.correction, "correction", "ideal"))
        self.validate()

    def validate(self, path: str = ""):
        if self.seeds < 1:
            raise ConfigError("seeds", f"must be >= 1, got {self.seeds}")
        if self.seed < 0:
            raise ConfigError("seed", f"must be >= 0, got {self.seed}")
        for section in (self.model, self.curation, self.correction):
            if hasattr(section, "check"):
                section.check(self)
        self._check_sweep()

    def _check_sweep(self):
        base = to_dict(self)
        base["sweep"] = {}
        for path, values in self.sweep:
            section, _, key = path.rpartition(".")
            obj = self
            for part in section.split(".") if section else []:
                if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
                    raise ConfigError(f"sweep.{path}", "unknown setting to sweep")
                obj = getattr(obj, part)
            allowed = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
            allowed |= {getattr(obj, "tag_key", None)} - {None}        # model.family, truth.kind, ...
            if not section or not dataclasses.is_dataclass(obj) or key not in allowed:
                raise ConfigError(f"sweep.{path}", "unknown setting to sweep")
            if section.split(".")[0] in ("metrics", "run", "checkpoint") or path == "loop.generations":
                raise ConfigError(f"sweep.{path}", "cannot be swept (it changes what is measured or "
                                  "how long, not the experiment)")
            if len(values) == 0:
                raise ConfigError(f"sweep.{path}", "needs at least one value")
            if len(set(map(repr, values))) != len(values):
                raise ConfigError(f"sweep.{path}", f"values must be distinct, got {list(values)}")
            for v in values:
                d = _set_path(base, path, v)
                try:
                    Config.from_dict(d)
                except ConfigError as e:
                    raise ConfigError(f"sweep.{path}", f"value {v!r} is invalid ({e})") from None
        names = [p.rpartition(".")[2] for p, _ in self.sweep]
        if len(set(names)) != len(names):
            raise ConfigError("sweep", "two swept settings share a name; sweep each name once")

    # -- conversions
    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        if not isinstance(data, dict):
            raise ConfigError("config", f"expected a mapping at the top level, got {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in allowed:
                raise ConfigError(str(key), f"unknown key; allowed: {', '.join(allowed)}")
        kw = {}
        for key, value in data.items():
            if key in ("truth", "model", "sweep", "curation", "correction"):
                kw[key] = value
            elif key == "loop":
                kw[key] = parse(LoopConfig, value, "loop")
            elif key == "metrics":
                kw[key] = parse(MetricsConfig, value, "metrics")
            elif key == "run":
                kw[key] = parse(RunConfig, value, "run")
            elif key == "checkpoint":
                kw[key] = parse(CheckpointConfig, value, "checkpoint")
            else:
                kw[key] = coerce(value, type_hints(cls)[key], key)
        return cls(**kw)

    def to_dict(self) -> dict:
        d = to_dict(self)
        d["sweep"] = {p: list(v) for p, v in self.sweep}
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(_named_callables(self.to_dict()), sort_keys=False)

    def replace(self, **changes) -> "Config":
        d = self.to_dict()
        for path, value in changes.items():
            d = _set_path(d, path.replace("__", "."), value)
        return Config.from_dict(d)

    def set(self, path: str, value) -> "Config":
        """Copy with one dotted setting changed (re-validated)."""
        return Config.from_dict(_set_path(self.to_dict(), path, value))

    # -- sweep structure
    @property
    def knob_axes(self) -> list[tuple[str, tuple]]:
        """Swept settings that vary inside one compiled program."""
        return [(p, v) for p, v in self.sweep if self._is_knob(p)]

    @property
    def static_axes(self) -> list[tuple[str, tuple]]:
        """Swept settings that need one compiled program per value."""
        return [(p, v) for p, v in self.sweep if not self._is_knob(p)]

    def _is_knob(self, path: str) -> bool:
        section, _, key = path.rpartition(".")
        obj = self
        for part in section.split("."):
            obj = getattr(obj, part)
        return is_knob(type(obj), key)

    def static_variants(self) -> list[tuple[dict, "Config"]]:
        """[(coords, config)] one per combination of static sweep values (knob sweeps kept)."""
        axes = self.static_axes
        out = []
        for combo in itertools.product(*[v for _, v in axes]):
            cfg = self
            for (p, _), v in zip(axes, combo):
                cfg = cfg.set(p, v)
            out.append(({dim_name(p): v for (p, _), v in zip(axes, combo)}, cfg))
        return out

    def knob_grid(self) -> list[tuple[dict, "Config"]]:
        """[(coords, config)] one per combination of knob sweep values, in C order."""
        axes = self.knob_axes
        out = []
        for combo in itertools.product(*[v for _, v in axes]):
            d = self.to_dict()
            for (p, _), v in zip(axes, combo):
                d = _set_path(d, p, v)
            d["sweep"] = {}
            out.append(({dim_name(p): v for (p, _), v in zip(axes, combo)}, Config.from_dict(d)))
        return out


def structure_key(cfg: "Config") -> str:
    """What fixes the compiled program: every static setting (knob values, sweeps, seeds, name and
    progress display excluded). Equal keys can share compiled code."""
    def strip(obj):
        out = {}
        tag = getattr(obj, "tag_key", None)
        if tag:
            out[tag] = obj.name
        for f in dataclasses.fields(obj):
            if f.metadata.get("knob"):
                continue
            v = getattr(obj, f.name)
            out[f.name] = strip(v) if dataclasses.is_dataclass(v) else v
        return out

    d = strip(cfg)
    for k in ("sweep", "seeds", "seed", "name", "checkpoint"):
        d.pop(k, None)
    d.get("run", {}).pop("progress", None)
    return repr(d)
def _named_callables(d):
    """Replace Python callables (custom rewards, maps) by their import path 'module:qualname'."""
    if isinstance(d, dict):
        return {k: _named_callables(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_named_callables(v) for v in d]
    if callable(d):
        return f"{getattr(d, '__module__', '?')}:{getattr(d, '__qualname__', repr(d))}"
    return d


def dim_name(path: str) -> str:
    """The results dimension of a swept setting: its last path component."""
    return path.rpartition(".")[2]


def _parse_sweep(sweep) -> tuple:
    if isinstance(sweep, tuple):
        return sweep
    if sweep is None:
        return ()
    if not isinstance(sweep, dict):
        raise ConfigError("sweep", f"expected a mapping of setting -> list of values, got {sweep!r}")
    out = []
    for path, values in sweep.items():
        if not isinstance(values, (list, tuple)):
            raise ConfigError(f"sweep.{path}", f"expected a list of values, got {values!r}")
        out.append((str(path), tuple(_freeze(v) for v in values)))
    return tuple(out)


def _freeze(v):
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def _set_path(d: dict, path: str, value) -> dict:
    """Copy of nested dict ``d`` with dotted ``path`` set to ``value``."""
    import copy

    d = copy.deepcopy(d)
    if path.startswith("sweep."):
        sweep = dict(d.get("sweep") or {})
        sweep[path[len("sweep."):]] = _untuple(value)
        d["sweep"] = sweep
        return d
    parts = path.split(".")
    node = d
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(".".join(parts[: i + 1]), "is a value, not a section")
        node = nxt
    node[parts[-1]] = _untuple(value)
    if len(parts) == 2 and (parts[0], parts[1]) in _TAGS:
        _keep_options_of(node, _TAGS[(parts[0], parts[1])], value)
    return d


# Sections whose class is chosen by a tag; setting the tag (e.g. sweeping model.family) keeps
# only the options the newly chosen class accepts.
_TAGS = {("model", "family"): "FAMILIES", ("truth", "kind"): "SOURCES",
         ("curation", "rule"): "CURATORS", ("correction", "kind"): "CORRECTORS"}


def _keep_options_of(section: dict, table_name: str, name) -> None:
    registry.load_builtin()
    entry = getattr(registry, table_name).get(name)
    if entry is None:
        return          # parsing then names the unknown value
    fields = {f.name for f in dataclasses.fields(entry.options)}
    for key in [k for k in section if k not in fields and k != entry.options.tag_key]:
        del section[key]


def parse_override(text: str) -> tuple[str, Any]:
    """``"loop.generations=50"`` -> ("loop.generations", 50) (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError("override", f"expected key=value, got {text!r}")
    key, _, raw = text.partition("=")
    key = key.strip()
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key, value


def load_config(path_or_dict, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (path, YAML text or dict) and apply ``key=value`` overrides."""
    if isinstance(path_or_dict, Config):
        data = path_or_dict.to_dict()
    elif isinstance(path_or_dict, dict):
        data = path_or_dict
    else:
        p = Path(path_or_dict)
        if not p.exists():
            raise ConfigError("config", f"file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise ConfigError("config", f"{p} is not valid YAML{where}") from None
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        data = _set_path(data, key, value)
    return Config.from_dict(data)
