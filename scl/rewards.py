"""Rewards: pure functions of a sample, used by curation (``curation.reward``) and its metrics.

``make_reward(options) -> reward(rows) -> [N]`` where ``rows`` is [N, d] (or, for ``table``, [N]
or [N, 1] category indices; for ``custom``, any pytree with leading axis N).

Built-in kinds (``curation.reward.kind``):

  distance         r(x) = -scale * |x - target|
  clipped_centres  r(x) = -scale * min(max(min_k |x - c_k| - radius, 0), clip)
                   (the mixture experiment of Ferbach et al., NeurIPS 2024: negative distance to
                   the nearest reward centre, 0 within ``radius`` of a centre, floored at -scale*clip)
  linear           r(x) = weights . x + bias
  box              r(x) = scale * 1[low <= x <= high coordinate-wise] (indicator of a region)
  table            r(i) = values[i] for category indices i (discrete data)
  custom           r(x) = function(x) for ONE row x, vmapped over rows. ``function`` is a Python
                   callable (Python API) or a dotted import path "module:function" (YAML).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

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
    """A callable, or a dotted import path ``"module:function"`` (``module.function`` accepted)."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ConfigError(path, f"expected a callable or an import path 'module:function', got {spec!r}")
    module, sep, attr = spec.partition(":")
    if not sep:
        module, _, attr = spec.rpartition(".")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(path, f"cannot import {spec!r} (expected 'module:function')") from None
    if not callable(obj):
        raise ConfigError(path, f"{spec!r} is not callable")
    return obj


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
        fn = resolve_callable(self.function, "reward.function")
        return jax.vmap(lambda x: jnp.asarray(fn(x), jnp.float32))


REWARDS = {c.name: c for c in (DistanceReward, ClippedCentresReward, LinearReward, BoxReward,
                               TableReward, CustomReward)}


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


def make_reward(options) -> Callable:
    """reward(rows [N, ...]) -> [N] float32."""
    return options.make()


def check_dim(options, dim: Optional[int], path: str = "curation.reward"):
    """Refuse a reward whose points do not live in the truth's dimension."""
    d = options.dim()
    if options.name == "table" and dim:
        raise ConfigError(f"{path}.kind", f"table rewards need category-index rows; this truth has {dim}-dimensional rows")
    if d is not None and dim == 0:
        raise ConfigError(f"{path}.kind", f"{options.name} rewards need vector rows; for category indices "
                          "use kind: table or kind: custom")
    if d is not None and dim is not None and d != dim:
        raise ConfigError(path, f"{options.name} reward is {d}-dimensional but the truth is {dim}-dimensional")
