"""Categorical truths on k categories: any probability vector, or a Zipf law.

Rows are int32 category indices: ``sample(key, n) -> [n]``. ``Source.params["probs"]`` is the
exact probability vector [k]; ``log_prob(x [n]) -> [n]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from scl.errors import ConfigError
from scl.options import static
from scl.data.source import Source
from scl.families.weighted import inverse_cdf, weights_cdf
from scl.registry import register_source


def categorical_source(probs: np.ndarray) -> Source:
    """Source drawing int category indices from ``probs`` [k] (inverse CDF, exact)."""
    p = jnp.asarray(probs, jnp.float32)
    cdf = weights_cdf(p)
    logp = jnp.log(p)

    def sample(key, n):
        return inverse_cdf(cdf, jax.random.uniform(key, (n,))).astype(jnp.int32)

    def log_prob(x):
        return logp[x]

    return Source(sample=sample, dim=0, log_prob=log_prob, params={"probs": p})


@dataclass(frozen=True)
class CategoricalTruth:
    """``truth: {kind: categorical, probs: [p_1, ..., p_k]}`` (normalised if they do not sum to 1)."""

    tag_key = "kind"
    name = "categorical"
    rows = "categorical"
    dim = 0
    probs: tuple[float, ...] = static((0.5, 0.3, 0.2), "category probabilities (>= 0, not all 0)")

    def validate(self, path):
        p = np.asarray(self.probs, float)
        if p.size < 2:
            raise ConfigError(f"{path}.probs", f"needs at least 2 categories, got {p.size}")
        if np.any(p < 0) or not np.all(np.isfinite(p)) or p.sum() <= 0:
            raise ConfigError(f"{path}.probs", "must be finite, >= 0 and not all 0")

    @property
    def categories(self) -> int:
        return len(self.probs)

    def probabilities(self) -> np.ndarray:
        p = np.asarray(self.probs, np.float64)
        return p / p.sum()


@dataclass(frozen=True)
class ZipfTruth:
    """``truth: {kind: zipf, categories: k, exponent: s}``: p_i proportional to i^(-s), i = 1..k."""

    tag_key = "kind"
    name = "zipf"
    rows = "categorical"
    dim = 0
    categories: int = static(1000, "number of categories k", ge=2)
    exponent: float = static(1.1, "Zipf exponent s (p_i proportional to i^-s)", ge=0.0, finite=True)

    def probabilities(self) -> np.ndarray:
        p = np.arange(1, self.categories + 1, dtype=np.float64) ** (-self.exponent)
        return p / p.sum()


@register_source("categorical", CategoricalTruth)
def make_categorical(o: CategoricalTruth) -> Source:
    """Categorical law with the given probabilities."""
    return categorical_source(o.probabilities())


@register_source("zipf", ZipfTruth)
def make_zipf(o: ZipfTruth) -> Source:
    """Zipf law over k categories."""
    return categorical_source(o.probabilities())
