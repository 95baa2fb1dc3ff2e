"""Curation stages: keep synthetic rows chosen by a reward (the user's preference).

A curator is a :class:`scl.stages.Stage` turning ``rows * K`` candidates sampled from the model
into ``rows`` kept rows (with weights):

  luce       (K-wise Bradley-Terry / Luce choice) split the candidates into ``rows`` groups of K
             consecutive rows and keep x_k of each group with probability
             exp(beta r(x_k)) / sum_j exp(beta r(x_j)). ``beta`` is a vmapped knob (0: no
             preference; large: argmax).
  argmax     keep the highest-reward candidate of each group of K (ties broken uniformly).
  top_share  keep the ``rows`` highest-reward rows of the whole batch of rows * K candidates,
             K = ceil(1 / share): the kept share is exactly 1/K.
  threshold  keep every candidate whose reward exceeds ``threshold`` (a knob; K = 1): the kept
             count varies, dropped rows get weight 0 and the kept ones move to the front.
  tilt       the exponential tilt p_t(x) e^{beta r(x)} / Z (``beta`` >= 0 a knob). Exact where
             the family samples a Gaussian (``Family.sampling_gaussian``) and the reward is linear
             or quadratic (``quadratic_form``): rows are drawn from the tilted Gaussian
             (:func:`tilted_gaussian`). Otherwise (or with ``method: resample``) importance
             resampling: K candidates per row from p_t, one kept with probability ~ e^{beta r},
             i.e. Luce choice; its law tends to the tilt as K grows (exact law: H above).

K is static (it sets how many candidates the model draws).
Theory (THEORY.md section 5): the Luce-kept row has law p(x) H(x) with
H(x) = E[K e^{beta r(x)} / (e^{beta r(x)} + sum_{i<K} e^{beta r(X_i)})]; :func:`exact_luce_law`
computes it exactly for a categorical p.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from scl.errors import ConfigError
from scl.options import knob, static
from scl.registry import register_curator
from scl.rewards import check_dim, make_reward, parse_reward
from scl.small_linalg import cholesky, matmul
from scl.stages import Stage, no_state

tree_map = jax.tree_util.tree_map


class _WithReward:
    """Shared by every rule: the reward is parsed (and checked) when the section is built."""

    def __post_init__(self):
        object.__setattr__(self, "reward", parse_reward(self.reward, "curation.reward"))

    def check(self, cfg):
        check_dim(self.reward, getattr(cfg.truth, "dim", None), rows=getattr(cfg.truth, "rows", "vector"))


@dataclass(frozen=True)
class LuceCuration(_WithReward):
    """``curation: {rule: luce, K, beta, reward: {kind: ...}}``."""

    tag_key = "rule"
    name = "luce"
    K: int = static(2, "candidates per kept row (static)", ge=1)
    beta: float = knob(1.0, "inverse temperature of the choice: P(keep k) ~ exp(beta r_k) "
                       "(finite; rule: argmax is beta = inf)", ge=0.0)
    reward: Any = static(None, "reward section {kind: ...} (see scl.rewards)")


@dataclass(frozen=True)
class ArgmaxCuration(_WithReward):
    """``curation: {rule: argmax, K, reward}``: keep the best of K."""

    tag_key = "rule"
    name = "argmax"
    K: int = static(2, "candidates per kept row (static)", ge=1)
    reward: Any = static(None, "reward section {kind: ...}")


@dataclass(frozen=True)
class TopShareCuration(_WithReward):
    """``curation: {rule: top_share, share, reward}``: keep the best ``share`` of the batch."""

    tag_key = "rule"
    name = "top_share"
    share: float = static(0.5, "kept share of the candidates; K = ceil(1/share) candidates per row",
                          gt=0.0, le=1.0)
    reward: Any = static(None, "reward section {kind: ...}")

    @property
    def K(self) -> int:
        return int(math.ceil(1.0 / self.share - 1e-9))


@dataclass(frozen=True)
class ThresholdCuration(_WithReward):
    """``curation: {rule: threshold, threshold, reward}``: keep the rows whose reward exceeds
    ``threshold``; the kept count varies (0 .. rows)."""

    tag_key = "rule"
    name = "threshold"
    K = 1
    threshold: float = knob(0.0, "keep a row when its reward is > threshold")
    reward: Any = static(None, "reward section {kind: ...}")


@dataclass(frozen=True)
class TiltCuration(_WithReward):
    """``curation: {rule: tilt, beta, K, method, reward}``: the curated law p_t e^{beta r} / Z."""

    tag_key = "rule"
    name = "tilt"
    beta: float = knob(1.0, "tilt strength: curated law p_t(x) e^{beta r(x)} / Z (0: no curation; "
                       "a negative tilt is a positive one of the negated reward)", ge=0.0)
    K: int = static(16, "candidates per kept row of the importance-resampling path (static; "
                    "unused where the tilt is exact)", ge=1)
    method: Literal["auto", "exact", "resample"] = static(
        "auto", "exact: draw from the tilted Gaussian (Gaussian family, linear or quadratic "
        "reward; refused elsewhere); resample: importance resampling with K candidates; auto: "
        "exact where possible, else resample")
    reward: Any = static(None, "reward section {kind: ...}; linear and quadratic tilt a Gaussian exactly")

    def check(self, cfg):
        super().check(cfg)
        if self.method == "exact" and getattr(self.reward, "quadratic_form", None) is None:
            raise ConfigError("curation.method", f"'exact' needs a linear or quadratic reward, got "
                              f"kind {self.reward.name!r} (use method: resample or auto)")
        if self.method == "exact" and not getattr(cfg.model, "samples_gaussian", False):
            raise ConfigError("curation.method", f"'exact' needs a family that samples a Gaussian, got "
                              f"model.family {cfg.model.name!r} (use method: resample or auto)")


def tilted_gaussian(mean, root, A, b, beta):
    """N(mean, root root^T) tilted by e^{beta r}, r(x) = -x^T A x / 2 + b.x (A [d, d] PSD, b [d],
    beta >= 0): the Gaussian with precision P = Sigma^-1 + beta A and mean P^-1 (Sigma^-1 mean +
    beta b), computed without inverting Sigma (a collapsed model stays valid):
    cov = (I + beta Sigma A)^-1 Sigma, mean' = (I + beta Sigma A)^-1 (mean + beta Sigma b).
    ``A = None``: linear reward, mean + beta Sigma b with the same root. Returns (mean' [d], root' [d, d])."""
    cov = matmul(root, root.T)
    shifted = mean + beta * matmul(cov, b[:, None])[:, 0]
    if A is None:
        return shifted, root
    d = mean.shape[0]
    m = jnp.eye(d, dtype=cov.dtype) + beta * matmul(cov, A)
    tilted = jnp.linalg.solve(m, cov)
    tilted = 0.5 * (tilted + tilted.T)
    new_root = cholesky(tilted)
    return jnp.linalg.solve(m, shifted[:, None])[:, 0], jnp.where(jnp.isfinite(new_root), new_root, 0.0)


def tilt_is_exact(o: "TiltCuration", family) -> bool:
    """Whether ``tilt`` draws from the exact tilted law: a Gaussian-sampling family and a reward
    with a quadratic form (and ``method`` not ``resample``)."""
    possible = getattr(family, "sampling_gaussian", None) is not None and \
        getattr(o.reward, "quadratic_form", None) is not None
    if o.method == "exact" and not possible:
        raise ConfigError("curation.method", "'exact' needs a family that samples a Gaussian "
                          "(model.family: gaussian) and a linear or quadratic reward")
    return possible and o.method != "resample"


def _take_per_row(tree, rows: int, K: int, choice):
    """Row i keeps candidate choice[i] of its group: tree [rows*K, ...] -> [rows, ...]."""
    idx = jnp.arange(rows) * K + choice
    return tree_map(lambda a: a[idx], tree)


def luce_choice(key, rewards, beta):
    """rewards [rows, K] -> [rows] index kept, P(k) ~ exp(beta r_k)."""
    return jax.random.categorical(key, beta * rewards, axis=-1)


def argmax_choice(key, rewards):
    """rewards [rows, K] -> [rows] index of the largest reward, ties broken uniformly."""
    best = rewards >= jnp.max(rewards, -1, keepdims=True)
    return jnp.argmax(jnp.where(best, jax.random.uniform(key, rewards.shape), -1.0), -1)


def _curator(options, ctx, choose, weighted: bool = False) -> Stage:
    """A stateless curation stage: ``choose(key, candidates, rewards [rows*K], knobs)`` ->
    (kept rows [rows, ...], weights [rows])."""
    reward = make_reward(options.reward, ctx.source)

    def apply(key, state, candidates, w, knobs):
        kept, weights = choose(key, candidates, reward(candidates), knobs)
        return state, kept, weights
    return Stage(no_state, apply, options.K, weighted)


def _ones(rows: int):
    return jnp.ones((rows,), jnp.float32)


@register_curator("luce", LuceCuration)
def make_luce(o: LuceCuration, ctx) -> Stage:
    """K-wise Bradley-Terry / Luce choice."""
    rows = ctx.rows

    def choose(key, candidates, r, knobs):
        choice = luce_choice(key, r.reshape(rows, o.K), knobs["beta"])
        return _take_per_row(candidates, rows, o.K, choice), _ones(rows)
    return _curator(o, ctx, choose)


@register_curator("argmax", ArgmaxCuration)
def make_argmax(o: ArgmaxCuration, ctx) -> Stage:
    """Best of K."""
    rows = ctx.rows

    def choose(key, candidates, r, knobs):
        return _take_per_row(candidates, rows, o.K, argmax_choice(key, r.reshape(rows, o.K))), _ones(rows)
    return _curator(o, ctx, choose)


@register_curator("top_share", TopShareCuration)
def make_top_share(o: TopShareCuration, ctx) -> Stage:
    """Keep the top 1/K of the batch by reward."""
    rows = ctx.rows

    def choose(key, candidates, r, knobs):
        perm = jax.random.permutation(key, r.shape[0])   # ties broken uniformly
        _, j = jax.lax.top_k(r[perm], rows)
        idx = perm[j]
        return tree_map(lambda a: a[idx], candidates), _ones(rows)
    return _curator(o, ctx, choose)


@register_curator("threshold", ThresholdCuration)
def make_threshold(o: ThresholdCuration, ctx) -> Stage:
    """Keep every row whose reward exceeds the threshold (kept rows first, the rest weight 0)."""
    rows = ctx.rows

    def choose(key, candidates, r, knobs):
        keep = r > knobs["threshold"]
        order = jnp.argsort(~keep, stable=True)         # kept rows first, in their order
        return tree_map(lambda a: a[order], candidates), keep[order].astype(jnp.float32)
    return _curator(o, ctx, choose, weighted=True)


@register_curator("tilt", TiltCuration)
def make_tilt(o: TiltCuration, ctx) -> Stage:
    """Exponential tilt p_t e^{beta r}: exact for a Gaussian model with a linear or quadratic
    reward, else importance resampling (Luce choice among K candidates)."""
    rows = ctx.rows
    if not tilt_is_exact(o, ctx.family):
        def choose(key, candidates, r, knobs):
            choice = luce_choice(key, r.reshape(rows, o.K), knobs["beta"])
            return _take_per_row(candidates, rows, o.K, choice), _ones(rows)
        return _curator(o, ctx, choose)

    A, b = o.reward.quadratic_form()
    A = None if not np.any(A) else jnp.asarray(A, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    sampling_gaussian = ctx.family.sampling_gaussian

    def sample(key, model_state, count, model_knobs, knobs):
        mean, root = tilted_gaussian(*sampling_gaussian(model_state, model_knobs), A, b, knobs["beta"])
        z = jax.random.normal(key, (count * mean.shape[0],)).reshape(count, mean.shape[0])
        return mean + z @ root.T

    def apply(key, state, rows_in, w, knobs):       # the rows already follow the tilted law
        return state, rows_in, w
    return Stage(no_state, apply, 1, False, sample)


def make_curator(options, ctx) -> Stage:
    from scl.registry import CURATORS

    return CURATORS[options.name].make(options, ctx)


def exact_luce_law(p, r, K: int, beta: float = 1.0) -> np.ndarray:
    """Exact law of the Luce-kept category for K iid draws from categorical ``p`` (reference).

    Enumerates count vectors (c_1..c_m) of the K draws (multinomial weights):
    P(keep i) = sum_c Mult(c; K, p) c_i e^{beta r_i} / sum_j c_j e^{beta r_j}.
    """
    from itertools import combinations
    from math import lgamma

    p, r = np.asarray(p, float), np.asarray(r, float)
    m = len(p)
    e = np.exp(beta * (r - r.max()))
    out = np.zeros(m)
    for bars in combinations(range(K + m - 1), m - 1):   # stars and bars
        c = np.diff(np.concatenate([[-1], bars, [K + m - 1]])) - 1
        logw = lgamma(K + 1) - sum(lgamma(ci + 1) for ci in c) + \
            sum(ci * np.log(pi) for ci, pi in zip(c, p) if ci > 0)
        out += np.exp(logw) * c * e / np.dot(c, e)
    return out
