"""Curation: keep one row per group of candidates, chosen by a reward (the user's preference).

A curator turns ``rows * K`` candidates sampled from the model into ``rows`` kept rows:

  luce       (K-wise Bradley-Terry / Luce choice) split the candidates into ``rows`` groups of K
             consecutive rows and keep x_k of each group with probability
             exp(beta r(x_k)) / sum_j exp(beta r(x_j)). ``beta`` is a vmapped knob (0: no
             preference; large: argmax).
  argmax     keep the highest-reward candidate of each group of K (ties broken uniformly).
  top_share  keep the ``rows`` highest-reward rows of the whole batch of rows * K candidates,
             K = ceil(1 / share): the kept share is exactly 1/K.

K is static (it sets how many candidates the model draws); the number of kept rows is fixed.
Theory (THEORY.md section 5): the Luce-kept row has law p(x) H(x) with
H(x) = E[K e^{beta r(x)} / (e^{beta r(x)} + sum_{i<K} e^{beta r(X_i)})]; :func:`exact_luce_law`
computes it exactly for a categorical p.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from scl.config import check_range, knob, static
from scl.errors import ConfigError
from scl.registry import register_curator
from scl.rewards import check_dim, make_reward, parse_reward

tree_map = jax.tree_util.tree_map


class Curator(NamedTuple):
    """candidates_per_row: K (the model draws rows * K candidates).
    curate(key, candidates [rows*K, ...], knobs {name: value}) -> kept rows [rows, ...].
    reward(rows [N, ...]) -> [N]: the reward it curates by.
    """

    candidates_per_row: int
    curate: Callable
    reward: Callable


class _WithReward:
    """Shared by every rule: the reward is parsed (and checked) when the section is built."""

    def __post_init__(self):
        object.__setattr__(self, "reward", parse_reward(self.reward, "curation.reward"))

    def check(self, cfg):
        from scl.data import make_source

        check_dim(self.reward, make_source(cfg.truth).dim)


def _check_K(path, K):
    if K < 1:
        raise ConfigError(f"{path}.K", f"must be >= 1, got {K}")


@dataclass(frozen=True)
class LuceCuration(_WithReward):
    """``curation: {rule: luce, K, beta, reward: {kind: ...}}``."""

    tag_key = "rule"
    name = "luce"
    K: int = static(2, "candidates per kept row (static)")
    beta: float = knob(1.0, "inverse temperature of the choice: P(keep k) ~ exp(beta r_k)")
    reward: Any = static(None, "reward section {kind: ...} (see scl.rewards)")

    def validate(self, path):
        _check_K(path, self.K)
        check_range(f"{path}.beta", self.beta, 0.0)
        if math.isinf(self.beta):
            raise ConfigError(f"{path}.beta", "must be finite (use rule: argmax)")

    def knob_values(self) -> dict:
        return {"beta": self.beta}


@dataclass(frozen=True)
class ArgmaxCuration(_WithReward):
    """``curation: {rule: argmax, K, reward}``: keep the best of K."""

    tag_key = "rule"
    name = "argmax"
    K: int = static(2, "candidates per kept row (static)")
    reward: Any = static(None, "reward section {kind: ...}")

    def validate(self, path):
        _check_K(path, self.K)

    def knob_values(self) -> dict:
        return {}


@dataclass(frozen=True)
class TopShareCuration(_WithReward):
    """``curation: {rule: top_share, share, reward}``: keep the best ``share`` of the batch."""

    tag_key = "rule"
    name = "top_share"
    share: float = static(0.5, "kept share of the candidates; K = ceil(1/share) candidates per row")
    reward: Any = static(None, "reward section {kind: ...}")

    def validate(self, path):
        check_range(f"{path}.share", self.share, 0.0, 1.0, lo_open=True)

    @property
    def K(self) -> int:
        return int(math.ceil(1.0 / self.share - 1e-9))

    def knob_values(self) -> dict:
        return {}


def _groups(tree, rows: int, K: int):
    return tree_map(lambda a: a.reshape((rows, K) + a.shape[1:]), tree)


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


@register_curator("luce", LuceCuration)
def make_luce(o: LuceCuration, rows: int) -> Curator:
    """K-wise Bradley-Terry / Luce choice."""
    reward = make_reward(o.reward)

    def curate(key, candidates, knobs):
        r = reward(candidates).reshape(rows, o.K)
        return _take_per_row(candidates, rows, o.K, luce_choice(key, r, knobs["beta"]))
    return Curator(o.K, curate, reward)


@register_curator("argmax", ArgmaxCuration)
def make_argmax(o: ArgmaxCuration, rows: int) -> Curator:
    """Best of K."""
    reward = make_reward(o.reward)

    def curate(key, candidates, knobs):
        r = reward(candidates).reshape(rows, o.K)
        return _take_per_row(candidates, rows, o.K, argmax_choice(key, r))
    return Curator(o.K, curate, reward)


@register_curator("top_share", TopShareCuration)
def make_top_share(o: TopShareCuration, rows: int) -> Curator:
    """Keep the top 1/K of the batch by reward."""
    reward = make_reward(o.reward)

    def curate(key, candidates, knobs):
        r = reward(candidates)
        perm = jax.random.permutation(key, r.shape[0])   # ties broken uniformly
        _, j = jax.lax.top_k(r[perm], rows)
        idx = perm[j]
        return tree_map(lambda a: a[idx], candidates)
    return Curator(o.K, curate, reward)


def make_curator(options, rows: int) -> Curator:
    from scl.registry import CURATORS

    return CURATORS[options.name].make(options, rows)
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
