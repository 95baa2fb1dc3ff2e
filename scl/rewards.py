"""Rewards: pure functions of a sample, used by curation (``curation.reward``) and its metrics.

``make_reward(options) -> reward(rows) -> [N]`` where ``rows`` is [N, d] (or, for ``table``, [N]
or [N, 1] category indices; for ``custom``, any pytree with leading axis N).

Built-in kinds (``curation.reward.kind``):

  distance         r(x) = -scale * |x - target|
  clipped_centres  r(x) = -scale * min(max(min_k |x - c_k| - radius, 0), clip)
                   (the mixture experiment of Ferbach et al., NeurIPS 2024: negative distance to
                   the nearest reward centre, 0 within ``radius`` of a centre, floored at -scale*clip)
  linear           r(x) = weights . x + bias
  quadratic        r(x) = -scale * |x - target|^2
  box              r(x) = scale * 1[low <= x <= high coordinate-wise] (indicator of a region)
  table            r(i) = values[i] for category indices i (discrete data)
  class_probability  r(x) = scale * P(class | x) under the image truth's shipped classifier
                   (scl.features; the CIFAR-10 experiment of Ferbach et al. used 5 P(airplane))
  confidence       r(x) = scale * max_c P(c | x), the classifier's confidence
  custom           r(x) = function(x) for ONE row x, vmapped over rows. ``function`` is a Python
                   callable (Python API) or a dotted import path "module:function" (YAML).

``options.quadratic_form()`` (only the linear and quadratic kinds have it): (A [d, d], b [d])
with r(x) = -x^T A x / 2 + b . x + const, what an exact exponential tilt of a Gaussian needs
(scl.curation, rule ``tilt``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from scl.errors import ConfigError
from scl.options import static


@dataclass(frozen=True)
class DistanceReward:
    tag_key = "kind"
    name = "distance"
    target: tuple[float, ...] = static((0.0, 0.0), "target point")
    scale: float = static(1.0, "reward = -scale * distance", gt=0.0, finite=True)

    def dim(self):
        return len(self.target)

    def make(self):
        target = jnp.asarray(self.target, jnp.float32)
        return lambda x: -self.scale * jnp.linalg.norm(x - target, axis=-1)


@dataclass(frozen=True)
class ClippedCentresReward:
    tag_key = "kind"
    name = "clipped_centres"
    centres: tuple[tuple[float, ...], ...] = static(((2.0, 0.0),), "reward centres [k, d]")
    clip: float = static(1.0, "distances beyond clip (after radius) count as clip", gt=0.0)
    radius: float = static(0.0, "distances within radius of a centre count as 0", ge=0.0, finite=True)
    scale: float = static(1.0, "reward = -scale * clipped distance", gt=0.0, finite=True)

    def validate(self, path):
        if len(self.centres) == 0 or len({len(c) for c in self.centres}) != 1:
            raise ConfigError(f"{path}.centres", "needs a non-empty list of points of equal length")

    def dim(self):
        return len(self.centres[0])

    def make(self):
        centres = jnp.asarray(self.centres, jnp.float32)

        def reward(x):
            d = jnp.sqrt(jnp.min(jnp.sum((x[:, None, :] - centres[None]) ** 2, -1), -1))
            return -self.scale * jnp.clip(d - self.radius, 0.0, self.clip)
        return reward


@dataclass(frozen=True)
class LinearReward:
    tag_key = "kind"
    name = "linear"
    weights: tuple[float, ...] = static((1.0, 0.0), "reward = weights . x + bias")
    bias: float = static(0.0)

    def validate(self, path):
        if len(self.weights) == 0:
            raise ConfigError(f"{path}.weights", "needs at least one entry")

    def dim(self):
        return len(self.weights)

    def make(self):
        w = jnp.asarray(self.weights, jnp.float32)
        return lambda x: x @ w + self.bias

    def quadratic_form(self):
        d = len(self.weights)
        return np.zeros((d, d)), np.asarray(self.weights, float)


@dataclass(frozen=True)
class QuadraticReward:
    tag_key = "kind"
    name = "quadratic"
    target: tuple[float, ...] = static((0.0, 0.0), "target point")
    scale: float = static(1.0, "reward = -scale * |x - target|^2", gt=0.0, finite=True)

    def validate(self, path):
        if len(self.target) == 0:
            raise ConfigError(f"{path}.target", "needs at least one entry")

    def dim(self):
        return len(self.target)

    def make(self):
        target = jnp.asarray(self.target, jnp.float32)
        return lambda x: -self.scale * jnp.sum((x - target) ** 2, axis=-1)

    def quadratic_form(self):
        d = len(self.target)
        return 2.0 * self.scale * np.eye(d), 2.0 * self.scale * np.asarray(self.target, float)


@dataclass(frozen=True)
class BoxReward:
    tag_key = "kind"
    name = "box"
    low: tuple[float, ...] = static((0.0, 0.0), "lower corner of the region")
    high: tuple[float, ...] = static((1.0, 1.0), "upper corner of the region")
    scale: float = static(1.0, "reward inside the region (0 outside)")

    def validate(self, path):
        if len(self.low) != len(self.high) or len(self.low) == 0:
            raise ConfigError(f"{path}.high", "low and high need the same, non-zero length")
        if any(h < l for l, h in zip(self.low, self.high)):
            raise ConfigError(f"{path}.high", "must be >= low in every coordinate")

    def dim(self):
        return len(self.low)

    def make(self):
        lo, hi = jnp.asarray(self.low, jnp.float32), jnp.asarray(self.high, jnp.float32)
        return lambda x: self.scale * jnp.all((x >= lo) & (x <= hi), -1).astype(jnp.float32)


@dataclass(frozen=True)
class TableReward:
    tag_key = "kind"
    name = "table"
    values: tuple[float, ...] = static((0.0, 1.0), "reward of category i (rows are indices)")

    def validate(self, path):
        if len(self.values) == 0:
            raise ConfigError(f"{path}.values", "needs at least one entry")

    def dim(self):
        return None

    def make(self):
        values = jnp.asarray(self.values, jnp.float32)
        return lambda x: values[jnp.reshape(x, (x.shape[0],)).astype(jnp.int32)]


def resolve_callable(spec, path: str) -> Callable:
    """A callable, or a dotted import path ``"module:function"`` (``module.function`` accepted).

    Only the module the path names is imported (with its parent packages, as Python does). The
    result must be a row function: a Python function (or a JAX-wrapped one, a method, a
    functools.partial, a callable object) defined outside the standard library; builtins, C
    functions, classes and NumPy functions (which cannot take a traced row) are refused."""
    if callable(spec):
        _check_row_function(spec, repr(spec), path)
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(path, f"expected a callable or an import path 'module:function', got {spec!r}")
    module, sep, attr = spec.partition(":")
    if not sep:
        module, _, attr = spec.rpartition(".")
    if not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
        raise ConfigError(path, f"expected an import path 'module:function' of Python names, got {spec!r}")
    try:
        obj = importlib.import_module(module)
    except Exception as e:                 # any failure while importing the user's module: one line
        raise ConfigError(path, f"cannot import module {module!r} for {spec!r}: {_one_line(e)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(path, f"module {module!r} has no attribute {attr!r} (from {spec!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(path, f"{spec!r} is not callable")
    _check_row_function(obj, repr(spec), path)
    return obj


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _check_row_function(obj, shown: str, path: str) -> None:
    """Refuse callables that cannot be a pure function of one traced row."""
    import functools
    import sys
    import types

    while isinstance(obj, functools.partial):
        obj = obj.func
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    if isinstance(obj, type):
        raise ConfigError(path, f"{shown} is a class; expected a function of one row")
    if isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType, np.ufunc)):
        raise ConfigError(path, f"{shown} is a builtin or C function; expected a Python function of one row")
    module = getattr(obj, "__module__", None) or ""
    top = module.split(".")[0]
    if top in ("builtins", "numpy") or top in getattr(sys, "stdlib_module_names", ()):
        raise ConfigError(path, f"{shown} is defined in {module!r}; expected a function of one row written "
                          "in your own module (jax.numpy inside it is fine)")


def traced_row_function(fn, spec, path: str, returns: str):
    """Wrap a user's row function so that any failure while JAX traces it (it runs once, on an
    abstract row, when the program is built) is one ConfigError naming ``path``. ``returns``:
    "scalar" (a reward) or "row" (a projection: same shape as its input)."""
    shown = spec if isinstance(spec, str) else getattr(spec, "__qualname__", repr(spec))

    def row(x):
        try:
            out = fn(x)
            if returns == "scalar":
                out = jnp.asarray(out, jnp.float32)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(path, f"{shown!s} failed on one row: {_one_line(e)}") from None
        if returns == "scalar" and out.shape != ():
            raise ConfigError(path, f"{shown!s} must return one number per row, got shape {out.shape}")
        if returns == "row":
            got = jax.tree_util.tree_structure(out), [getattr(a, "shape", None) for a in jax.tree_util.tree_leaves(out)]
            want = jax.tree_util.tree_structure(x), [a.shape for a in jax.tree_util.tree_leaves(x)]
            if got != want:
                raise ConfigError(path, f"{shown!s} must return a row shaped like its input {want[1]}, got {got[1]}")
        return out
    return row


@dataclass(frozen=True)
class CustomReward:
    tag_key = "kind"
    name = "custom"
    function: Any = static(None, "callable r(one row) -> scalar, or import path 'module:function'")

    def validate(self, path):
        resolve_callable(self.function, f"{path}.function")

    def dim(self):
        return None

    def make(self):
        fn = resolve_callable(self.function, "curation.reward.function")
        return jax.vmap(traced_row_function(fn, self.function, "curation.reward.function", "scalar"))


@dataclass(frozen=True)
class ClassProbabilityReward:
    tag_key = "kind"
    name = "class_probability"
    needs_classifier = True
    label: int = static(None, "the rewarded class (an index of the truth's classes)", ge=0)
    scale: float = static(5.0, "r = scale * P(label | image)", finite=True)

    def validate(self, path):
        if self.label is None:
            raise ConfigError(f"{path}.label", "is required: the index of the rewarded class")

    def dim(self):
        return None

    def make(self, source):
        classes = int(source.params["num_classes"])
        if self.label >= classes:
            raise ConfigError("curation.reward.label", f"must be < {classes} (the truth's classes), got {self.label}")
        return lambda rows: self.scale * jax.nn.softmax(source.features(rows)["logits"])[:, self.label]


@dataclass(frozen=True)
class ConfidenceReward:
    tag_key = "kind"
    name = "confidence"
    needs_classifier = True
    scale: float = static(1.0, "r = scale * max_c P(c | image)", finite=True)

    def dim(self):
        return None

    def make(self, source):
        return lambda rows: self.scale * jnp.max(jax.nn.softmax(source.features(rows)["logits"]), -1)


REWARDS = {c.name: c for c in (DistanceReward, ClippedCentresReward, LinearReward, QuadraticReward, BoxReward,
                               TableReward, ClassProbabilityReward, ConfidenceReward, CustomReward)}


def parse_reward(data, path: str = "curation.reward"):
    """Reward options from a mapping ``{kind: ..., ...}``, a callable (custom) or options object."""
    from scl.options import parse

    if data is None:
        raise ConfigError(path, f"a reward is required: a mapping with kind one of {', '.join(REWARDS)}")
    if isinstance(data, tuple(REWARDS.values())):
        return data
    if callable(data):
        return parse(CustomReward, {"function": data}, path)
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping with kind one of {', '.join(REWARDS)}, got {data!r}")
    kind = data.get("kind")
    if kind not in REWARDS:
        raise ConfigError(f"{path}.kind", f"unknown reward kind {kind!r}; allowed: {', '.join(REWARDS)}")
    return parse(REWARDS[kind], data, path)


def make_reward(options, source=None) -> Callable:
    """reward(rows [N, ...]) -> [N] float32; the classifier kinds read the truth's ``source``."""
    if getattr(options, "needs_classifier", False):
        return options.make(source)
    return options.make()


def check_dim(options, dim: Optional[int], path: str = "curation.reward", rows: str = "vector"):
    """Refuse a reward whose points do not live in the truth's dimension (or rows)."""
    if getattr(options, "needs_classifier", False) != (rows == "image") and options.name != "custom":
        if rows == "image":
            raise ConfigError(f"{path}.kind", f"image truths take the classifier rewards (class_probability, "
                              f"confidence) or custom, not {options.name!r}")
        raise ConfigError(f"{path}.kind", f"{options.name} rewards need an image truth with a shipped "
                          f"classifier (truth.kind: digits)")
    d = options.dim()
    if options.name == "table" and dim:
        raise ConfigError(f"{path}.kind", f"table rewards need category-index rows; this truth has {dim}-dimensional rows")
    if d is not None and dim == 0:
        raise ConfigError(f"{path}.kind", f"{options.name} rewards need vector rows; for category indices "
                          "use kind: table or kind: custom")
    if d is not None and dim is not None and d != dim:
        raise ConfigError(path, f"{options.name} reward is {d}-dimensional but the truth is {dim}-dimensional")
