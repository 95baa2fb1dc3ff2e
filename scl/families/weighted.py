"""Helpers shared by families whose training sets are weighted rows in fixed-capacity buffers."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from scl.errors import ConfigError


def pick_rows(key, w, n: int):
    """[n] int indices drawn i.i.d. with probability proportional to the weights w [N] >= 0.

    Inverse-CDF sampling (cumsum + searchsorted): O(N + n log N), so a large, mostly empty
    accumulate buffer costs no more than one pass over it. Zero-weight rows are never picked.
    """
    return inverse_cdf(weights_cdf(w), jax.random.uniform(key, (n,)))


def weights_cdf(w):
    """[N] unnormalised cdf of weights w [N] >= 0 in which a zero-weight row repeats its
    predecessor's value exactly (-inf before the first positive row).

    XLA's cumsum is a parallel scan whose rounding differs from index to index, so cumsum alone can
    step up at a zero weight and let a draw land on an empty row; a running max is exact.
    """
    return jax.lax.cummax(jnp.where(w > 0, jnp.cumsum(w), -jnp.inf))


def inverse_cdf(cdf, u):
    """[n] indices i with cdf[i-1] <= u * total < cdf[i] for an unnormalised cdf [N], u [n] in [0, 1).

    u * total can round up to total in float32; it is capped just below it, so a zero-weight row
    at the end of the buffer can never be returned.
    """
    total = jnp.max(cdf)
    v = jnp.minimum(u * total, jnp.nextafter(total, jnp.zeros_like(total)))
    return jnp.clip(jnp.searchsorted(cdf, v, side="right"), 0, cdf.shape[0] - 1)


def effective_size(w):
    """Kish effective sample size (sum w)^2 / sum w^2; the row count for 0/1 weights."""
    return jnp.sum(w) ** 2 / jnp.maximum(jnp.sum(w ** 2), 1e-30)


def truth_rows(truth) -> str:
    """What a truth's rows are: 'vector' ([n, dim]), 'categorical' or 'regression'."""
    return getattr(truth, "rows", "vector")


def require_rows(cfg, wanted: str, family: str):
    """ConfigError naming ``truth.kind`` unless the truth's rows are of the kind ``family`` fits."""
    got = truth_rows(cfg.truth)
    if got != wanted:
        raise ConfigError("truth.kind", f"model.family {family!r} needs a truth with {wanted} rows; "
                          f"{cfg.truth.name!r} has {got} rows")
