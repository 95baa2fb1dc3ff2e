"""Typed, frozen, validated experiment configs; YAML in, YAML out.

A config is a tree of frozen dataclasses. Fields marked ``knob()`` are numeric settings that do not
change shapes: they can be swept *inside* one compiled program (vmapped). Every other field is
static: sweeping it compiles one program per value and joins the results.

Every invalid input raises :class:`scl.errors.ConfigError` naming the field, e.g.
``loop.real_fraction: must be in [0, 1], got 1.5``.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from scl import catalog, registry  # noqa: F401  (catalog: registers the built-in pieces)
from scl.errors import ConfigError
from scl.grid import dim_name
from scl.options import (check_declared, coerce, is_knob, join as _join, knob, parse, static, to_dict,
                         type_hints, untuple as _untuple)


# ----------------------------------------------------------------------------- sections

@dataclass(frozen=True)
class LoopConfig:
    """How each generation's training set is built (see README, 'Mixing conventions')."""

    generations: int = static(100, "generations after generation 0 (the fit on real data)", ge=1)
    n: int = static(100, "real sample size: generation 0 fits n real rows; also the training size", ge=2)
    synthetic_size: Optional[int] = static(
        None, "synthetic rows per generation (replace, fresh: ignored, = n; accumulate*: default n; "
              "fixed_real: instead of lam)", ge=1)
    regime: str = static("replace", "mixing regime (scl.mixing: one file per regime)")
    real_fraction: Optional[float] = knob(
        None, "share of real rows in each generation's training set (fresh, fixed_real)", ge=0.0, le=1.0)
    lam: Optional[float] = knob(None, "fixed_real: #synthetic / #real (Bertrand et al. lambda)", ge=0.0)
    real_weight: Optional[float] = knob(
        None, "share of the training weight on the real rows, 1 - share on the synthetic ones, "
        "whatever their counts (regimes mixing both); null: every row weight 1", ge=0.0, le=1.0)

    def validate(self, path):
        entry = registry.REGIMES.get(self.regime)
        if entry is None:
            raise ConfigError(_join(path, "regime"), f"must be one of {', '.join(registry.REGIMES)}; "
                              f"got {self.regime!r}")
        check = entry.traits.get("check")
        if check is not None:
            check(self, path)
        if self.real_weight is not None and not entry.traits.get("real_rows"):
            have = [name for name, e in registry.REGIMES.items() if e.traits.get("real_rows")]
            raise ConfigError(_join(path, "real_weight"), f"regime {self.regime!r} trains on no real rows; "
                              f"real_weight needs one of {', '.join(have)}")

    @property
    def synthetic_rows(self) -> int:
        if registry.REGIMES[self.regime].traits.get("synthetic_rows_are_n"):
            return self.n
        return self.synthetic_size or self.n

    @property
    def lam_value(self) -> float:
        """lambda = #synthetic/#real, from lam or real_fraction f as (1 - f) / f (0 when neither is
        set): the one place this conversion is made."""
        if self.lam is not None:
            return self.lam
        f = self.real_fraction
        return 0.0 if not f else (1.0 - f) / f

    def derived_knobs(self) -> dict:
        return {"lam": self.lam_value, "real_weight_set": float(self.real_weight is not None)}


@dataclass(frozen=True)
class MetricsConfig:
    names: tuple[str, ...] = static(("w2", "mean_sqerr", "trace_ratio", "logdet_ratio", "sliced_w2"),
                                    "metrics taken every generation")
    samples: int = static(512, "rows of the per-generation probe: drawn once from the model and once "
                          "from the truth, shared by every sample-based metric", ge=2)
    projections: int = static(64, "random directions for sliced Wasserstein", ge=1)
    mmd_bandwidth: float = static(1.0, "Gaussian-kernel bandwidth for mmd", gt=0.0)
    sinkhorn_epsilon: float = static(0.05, "entropic regularisation for sinkhorn (ott-jax)", gt=0.0)
    theory: bool = static(True, "closed-form predictions (scl.theory), where known: dashed on the curves "
                          "figure, predicted vs simulated (z-score) in the summary")
    mode_share: float = static(0.02, "modes_covered: a true mode counts when it holds at least this "
                               "share of the model's samples", gt=0.0, le=1.0)
    nearest_k: int = static(5, "precision, recall, density, coverage: k of the k-nearest-neighbour "
                            "balls in feature space (Kynkaanniemi et al. 2019; Naeem et al. 2020)", ge=1)
    density_grid: int = static(256, "tv_density: midpoint-rule points per axis of the grid over the "
                               "truth's box (1-D: this many points, 2-D: its square)", ge=8, le=4096)

    def validate(self, path):
        for i, name in enumerate(self.names):
            if name not in registry.METRICS:
                raise ConfigError(f"{_join(path, 'names')}[{i}]",
                                  f"unknown metric {name!r}; allowed: {', '.join(sorted(registry.METRICS))}")


@dataclass(frozen=True)
class RunConfig:
    chunk_size: int = static(10, "generations per compiled chunk (progress/checkpoint granularity)", ge=1)
    progress: bool = static(True, "show a progress bar")
    config_batch_size: Optional[int] = static(
        None, "configurations computed at once (lax.map over slices of a vmap; same results); "
              "default: the whole grid in one vmap", ge=1)


@dataclass(frozen=True)
class CheckpointConfig:
    """``checkpoint:`` per-chunk orbax checkpoints when a run writes into an output folder."""

    enabled: bool = static(True, "save a checkpoint after every chunk (runs with an output folder)")
    stride: int = static(1, "keep the model state of every stride-th generation (0: none)", ge=0)
    keep: int = static(2, "full loop states kept, newest first (older ones deleted)", ge=1)
    asynchronous: bool = static(True, "write in a background thread, overlapping the next chunk")
    keep_after_finish: bool = static(False, "keep the checkpoints once scl run/resume has written the results "
                                            "(needed for scl samples / load_generation afterwards)")


def _tagged(table_name: str, tag_key: str, data, path: str, default_name: str):
    """Parse a section whose class is chosen by a tag (``truth.kind``, ``model.family``)."""
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
    seed: int = static(0, "base seed: seed s of the run uses fold_in(PRNGKey(seed), s)", ge=0, le=2**32 - 1)
    seeds: int = static(8, "independent repetitions of every grid point", ge=1)
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
        for f in dataclasses.fields(self):
            if f.name in ("seed", "seeds"):
                check_declared(f, getattr(self, f.name), f.name)
        for section in (self.model, self.curation, self.correction):
            if hasattr(section, "check"):
                section.check(self)
        if self.loop.real_weight is not None and not getattr(self.model, "row_weights", False):
            have = [name for name, e in registry.FAMILIES.items() if getattr(e.options, "row_weights", False)]
            raise ConfigError("loop.real_weight", f"model.family {self.model.name!r} trains on its rows "
                              f"unweighted; real_weight needs a family whose fit reads row weights: {', '.join(have)}")
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
    d.get("metrics", {}).pop("theory", None)        # what is drawn and printed, not computed
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
    entry = getattr(registry, table_name).get(name)
    if entry is None:
        return          # parsing then names the unknown value
    fields = {f.name for f in dataclasses.fields(entry.options)}
    for key in [k for k in section if k not in fields and k != entry.options.tag_key]:
        del section[key]


def parse_override(text: str) -> tuple[str, Any]:
    """``"loop.generations=50"`` -> ("loop.generations", 50) (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError("--set", f"expected KEY=VALUE, got {text!r}")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part.strip() for part in key.split(".")):
        raise ConfigError("--set", f"expected KEY=VALUE with a dotted setting name as KEY, got {text!r}")
    try:
        value = _load_yaml(raw, "--set")
    except ConfigError as e:
        if "alias" in e.message or "duplicate" in e.message:
            raise
        value = raw
    return key, value


# ----------------------------------------------------------------------------- reading YAML safely

MAX_CONFIG_BYTES = 10 * 2**20      # a config is a few KB; refuse anything above 10 MiB unread
MAX_YAML_NODES = 100_000           # nodes after alias expansion (a "billion laughs" bomb has ~10^9)


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a duplicate key in a mapping and a document whose aliases
    expand to more than MAX_YAML_NODES nodes (checked on the composed graph, before anything is
    built, so a 1 KB bomb is refused at once)."""

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _check_expanded_size(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"unhashable key {key!r}", key_node.start_mark) from None
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1, seen[key])
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key, line, first):
        self.key, self.line, self.first = key, line, first


class _TooBig(Exception):
    pass


def _check_expanded_size(root) -> None:
    """Count the nodes of the document as if every alias were expanded (memoised on the shared
    nodes, so counting is linear in the file)."""
    memo = {}

    def size(node, depth=0):
        key = id(node)
        if key in memo:
            if memo[key] is None:             # a node inside itself (recursive alias)
                raise _TooBig("a recursive alias")
            return memo[key]
        if depth > 200:
            raise _TooBig("nesting deeper than 200 levels")
        memo[key] = None
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
        memo[key] = total
        if total > MAX_YAML_NODES:
            raise _TooBig(f"aliases expanding to more than {MAX_YAML_NODES} values")
        return total

    size(root)


def _load_yaml(text: str, field: str, where: str = "the value"):
    """Parse YAML text with :class:`_StrictLoader`; every failure is one ConfigError naming ``field``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as e:
        raise ConfigError(field, f"{where} has a duplicate key {e.key!r} (line {e.line}; first on line "
                          f"{e.first}): each key may appear once in a mapping") from None
    except _TooBig as e:
        raise ConfigError(field, f"{where} is refused: {e}") from None
    except RecursionError:
        raise ConfigError(field, f"{where} is nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(e, "problem", None) or ""
        raise ConfigError(field, f"{where} is not valid YAML{at}" + (f": {problem}" if problem else "")) from None


def path_arg(field: str, text, *, must_exist: bool = False) -> Path:
    """A file-system path given by the user, checked for what the OS refuses with an exception:
    NUL bytes, over-long names, and (``must_exist``) absence."""
    s = str(text)
    if "\0" in s:
        raise ConfigError(field, f"the path {s!r} contains a NUL byte")
    if not s:
        raise ConfigError(field, "the path is empty")
    p = Path(s)
    for part in p.parts:
        if len(os.fsencode(part)) > 255:
            raise ConfigError(field, f"a name in the path is {len(os.fsencode(part))} bytes long; at most 255 allowed")
    if len(os.fsencode(s)) > 4095:
        raise ConfigError(field, f"the path is {len(os.fsencode(s))} bytes long; at most 4095 allowed")
    if must_exist:
        try:
            p.stat()
        except FileNotFoundError:
            raise ConfigError(field, f"not found: {s}") from None
        except OSError as e:
            raise ConfigError(field, f"cannot read {s}: {e.strerror}") from None
    return p


def output_folder(field: str, text) -> Path:
    """A folder scl may create: every existing ancestor must be a folder (``-o file/sub`` is refused)."""
    p = path_arg(field, text)
    for anc in [p, *p.parents]:
        try:
            st = anc.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise ConfigError(field, f"cannot use {p}: {anc}: {e.strerror}") from None
        import stat as _stat

        if not _stat.S_ISDIR(st.st_mode):
            what = "itself a file" if anc == p else f"inside the file {anc}"
            raise ConfigError(field, f"{p} is {what}, not a folder")
        break
    return p


def read_config_text(path, field: str = "config") -> str:
    """The text of a YAML config file: UTF-8, not binary, not a folder, not huge."""
    p = path_arg(field, path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(field, f"file not found: {p}") from None
    except OSError as e:
        raise ConfigError(field, f"cannot read {p}: {e.strerror}") from None
    import stat as _stat

    if _stat.S_ISDIR(st.st_mode):
        raise ConfigError(field, f"{p} is a folder; expected a YAML config file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(field, f"{p} holds {st.st_size} bytes; a config is at most {MAX_CONFIG_BYTES} bytes")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(field, f"cannot read {p}: {e.strerror}") from None
    if b"\0" in raw:
        raise ConfigError(field, f"{p} is binary or UTF-16 (it holds NUL bytes); expected UTF-8 YAML text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(field, f"{p} is not UTF-8 text (byte {e.start}); expected UTF-8 YAML text") from None


def load_config(path_or_dict, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (path, YAML text or dict) and apply ``key=value`` overrides."""
    if isinstance(path_or_dict, Config):
        data = path_or_dict.to_dict()
    elif isinstance(path_or_dict, dict):
        data = path_or_dict
    else:
        data = _load_yaml(read_config_text(path_or_dict), "config", str(path_or_dict))
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ConfigError("config", f"{path_or_dict} must hold a mapping of settings at the top level, "
                              f"got {type(data).__name__}")
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        data = _set_path(data, key, value)
    return Config.from_dict(data)
