"""The histogram corrector of the 2-D Gaussian toy of Gillman et al., "Self-Correcting
Self-Consuming Loops for Generative Model Training" (ICML 2024), as its public code runs it
(github.com/nate-gillman/self-correcting-self-consuming, exp_scripts/gaussian_toy_example.py,
commit 97d1ea7; corrector introduced in 756c50c "Update toy experiment (#8)").

Pure JAX, fixed shapes, jit- and vmap-compatible (static: bins, low, high, law, oversample,
max_rounds; traced: key, rows, t, w, generation).

  histogram_mixture_correct  the corrector: n rows in, n i.i.d. rows out, drawn from the law of
                             the paper code's rejection sampler (law="paper") or from the
                             intended mixture (1-t) H + t N(0, I) (law="mixture").

``correction: {kind: histogram, gamma, bins, law}`` registers it as a correction stage (t =
gamma / (1 + gamma), gamma a knob). The decay of older synthetic batches is the regime
``accumulate_decay`` (scl.mixing.accumulate_decay), the fit the Gaussian family (MLE).
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from scl.errors import ConfigError
from scl.options import knob, static
from scl.registry import register_corrector
from scl.stages import Stage, no_state

_INV_2PI = 1.0 / (2.0 * math.pi)          # N(0, I_2) density at the origin


def _phi(x):
    """N(0, I_2) density at rows x [..., 2]."""
    return _INV_2PI * jnp.exp(-0.5 * jnp.sum(x * x, axis=-1))


def histogram2d(rows, w=None, bins: int = 10, low=None, high=None):
    """numpy.histogram2d(rows[:, 0], rows[:, 1], bins=bins, range=...) over the rows with w > 0.5.

    Returns (counts [bins, bins] float32 indexed [x_bin, y_bin], lo [2], width [2]).
    low/high None (the paper code): per-axis range = [min, max] of the weight-1 rows, widened to
    [v - 0.5, v + 0.5] when min == max (numpy's rule); 10 equal bins, the last one closed on the
    right. low/high given: a fixed range (scalars or length-2), rows outside it are not counted
    (as numpy does with ``range=``). With no weight-1 rows the counts are all zero.
    """
    rows = jnp.asarray(rows)
    dt = rows.dtype if jnp.issubdtype(rows.dtype, jnp.floating) else jnp.float32
    rows = rows.astype(dt)
    n = rows.shape[0]
    keep = jnp.ones((n,), bool) if w is None else (jnp.asarray(w) > 0.5)
    if low is None or high is None:
        big = jnp.asarray(jnp.finfo(dt).max, dt)
        lo = jnp.min(jnp.where(keep[:, None], rows, big), axis=0)
        hi = jnp.max(jnp.where(keep[:, None], rows, -big), axis=0)
        anyrow = jnp.any(keep)
        lo = jnp.where(anyrow, lo, 0.0)
        hi = jnp.where(anyrow, hi, 1.0)
        flat = hi <= lo
        lo, hi = jnp.where(flat, lo - 0.5, lo), jnp.where(flat, hi + 0.5, hi)
    else:
        lo = jnp.broadcast_to(jnp.asarray(low, dt), (2,))
        hi = jnp.broadcast_to(jnp.asarray(high, dt), (2,))
    width = (hi - lo) / bins
    idx = jnp.clip(jnp.floor((rows - lo) / width).astype(jnp.int32), 0, bins - 1)
    inside = jnp.all((rows >= lo) & (rows <= hi), axis=1)
    flat_idx = idx[:, 0] * bins + idx[:, 1]
    counts = jnp.zeros((bins * bins,), jnp.float32).at[flat_idx].add(
        jnp.where(keep & inside, 1.0, 0.0))
    return counts.reshape(bins, bins), lo, width


def histogram_mixture_correct(key, rows, t, bins: int = 10, low=None, high=None, w=None,
                              law: str = "paper", oversample: int = 2, max_rounds: int = 200):
    """Corrector of the paper's Gaussian toy: rows [n, 2] -> n i.i.d. rows [n, 2] (rows.dtype).

    H is the density of the bins x bins histogram of the weight-1 rows (see ``histogram2d``;
    default range = their min/max per axis, as ``np.histogram2d(..., bins=10, density=True)`` in
    the paper code), uniform within each bin: H(x) = c_b / (N dx dy), N = counted rows.
    phi = N(0, I) density. t = gamma / (1 + gamma) in [0, 1] (traced).

    law="mixture": the intended law (1 - t) H + t phi, drawn exactly and directly: component by
      Bernoulli(t), bin by a categorical over the counts, uniform within the bin.

    law="paper" (default): the law the paper's ``PointwiseCorrection.rejection_sampling`` really
      produces (exp_scripts/gaussian_toy_example.py, lines 173-211). It proposes x ~ N(0, I) and
      accepts when f(x) / (M phi(x)) > u with
          f(x) = (1 - t) H~(x) + t phi(x),   M = ((1 - t) max H + t phi(0)) / phi(0).
      M is not a bound on f / phi (H / phi grows in the tails), so acceptance is capped at 1 and
      the accepted law is NOT the mixture but
          g(x)  proportional to  min(f(x), M phi(x))
      i.e. the histogram part is cut by the Gaussian envelope (1 - t) max H exp(-|x|^2 / 2): even
      at t = 0 (gamma = 0) tail bins are thinned (a pull toward N(0, I)). H~ is H with the code's
      bin lookup ``int((x - x0) / dx)`` (truncation toward zero): bin 0 of each axis also covers
      [x0 - dx, x0), so the first row/column of bins is effectively twice as wide (corner 4x) at
      the same density value; outside [x0 - dx, x0 + bins dx) the histogram term is 0.
      Drawn exactly (no approximation): proposals from f normalised (the mixture
      (1-t) Z H~/Z + t phi, Z = mass of H~), accepted with probability min(1, M phi(x) / f(x)),
      first n accepted kept (a lax.while_loop over rounds of oversample * n proposals). Only if
      max_rounds rounds do not fill n rows are the remaining rows left as unaccepted draws from
      f (never seen in the toy: acceptance there is ~0.5-1).
      At t = 1 both laws are N(0, I).

    w: optional [n] 0/1 weights; only weight-1 rows enter the histogram (and its range). The
      output still has n rows, all i.i.d. from the law; a caller that wants sum(w) corrected rows
      keeps any sum(w) of them (e.g. the same mask w). The paper code corrects exactly the fresh
      synthetic batch (n = 25 rows) and returns as many rows.
    If no row is counted, the histogram term is dropped (pure N(0, I)).
    """
    if law not in ("paper", "mixture"):
        raise ValueError(f"law must be 'paper' or 'mixture', not {law!r}")
    rows = jnp.asarray(rows)
    out_dtype = rows.dtype if jnp.issubdtype(rows.dtype, jnp.floating) else jnp.float32
    n = rows.shape[0]
    counts, lo, width = histogram2d(rows, w, bins, low, high)
    counts = counts.reshape(-1)
    total = jnp.sum(counts)
    t = jnp.clip(jnp.asarray(t, jnp.float32), 0.0, 1.0)
    t = jnp.where(total > 0, t, 1.0)
    b = jnp.arange(bins * bins)
    bx, by = b // bins, b % bins
    area = width[0] * width[1]

    if law == "mixture":
        cell_left = jnp.stack([lo[0] + bx * width[0], lo[1] + by * width[1]], -1)
        cell_width = jnp.broadcast_to(width, (bins * bins, 2))
        cell_mass = counts
    else:
        # the code's truncating lookup widens bin 0 of each axis one bin width downward
        ex, ey = jnp.where(bx == 0, 2.0, 1.0), jnp.where(by == 0, 2.0, 1.0)
        cell_left = jnp.stack([lo[0] + (bx - (bx == 0)) * width[0],
                               lo[1] + (by - (by == 0)) * width[1]], -1)
        cell_width = jnp.stack([ex * width[0], ey * width[1]], -1)
        cell_mass = counts * ex * ey
    logits = jnp.where(cell_mass > 0, jnp.log(jnp.maximum(cell_mass, 1e-30)), -jnp.inf)
    z_hist = jnp.sum(cell_mass) / jnp.maximum(total, 1.0)     # 1 for "mixture", >= 1 for "paper"
    # weight of the histogram component in f normalised
    p_hist = jnp.where(total > 0, (1 - t) * z_hist / ((1 - t) * z_hist + t), 0.0)

    def propose(k, size):
        kc, kb, ku, kg = jax.random.split(k, 4)
        from_hist = jax.random.uniform(kc, (size,)) < p_hist
        cell = jax.random.categorical(kb, logits, shape=(size,))
        u = jax.random.uniform(ku, (size, 2))
        xh = cell_left[cell] + u * cell_width[cell]
        xg = jax.random.normal(kg, (size, 2))
        return jnp.where(from_hist[:, None], xh, xg)

    if law == "mixture":
        return propose(key, n).astype(out_dtype)

    hist_density = counts / (jnp.maximum(total, 1.0) * area)
    m_bound = ((1 - t) * jnp.max(hist_density) + t * _INV_2PI) / _INV_2PI

    def accept_prob(x):
        i = jnp.trunc((x - lo) / width).astype(jnp.int32)  # int() in the paper code
        ok = jnp.all((i >= 0) & (i < bins), axis=1)
        ic = jnp.clip(i, 0, bins - 1)
        h = jnp.where(ok, hist_density[ic[:, 0] * bins + ic[:, 1]], 0.0)
        ph = _phi(x)
        f = (1 - t) * h + t * ph
        return jnp.where(f > 0, jnp.minimum(1.0, m_bound * ph / jnp.where(f > 0, f, 1.0)), 0.0)

    size = oversample * n
    key, k0 = jax.random.split(key)
    buf0 = propose(k0, n)        # fallback only (max_rounds exhausted)

    def body(state):
        k, buf, count, r = state
        k, kp, ka = jax.random.split(k, 3)
        x = propose(kp, size)
        acc = jax.random.uniform(ka, (size,)) < accept_prob(x)
        pos = jnp.where(acc, count + jnp.cumsum(acc) - 1, n)
        buf = buf.at[pos].set(x, mode="drop")
        return k, buf, jnp.minimum(n, count + jnp.sum(acc)), r + 1

    def cond(state):
        return (state[2] < n) & (state[3] < max_rounds)

    _, buf, _, _ = jax.lax.while_loop(cond, body, (key, buf0, jnp.int32(0), jnp.int32(0)))
    return buf.astype(out_dtype)


# ----------------------------------------------------------------------------- the stage

@dataclass(frozen=True)
class HistogramCorrection:
    """``correction: {kind: histogram, gamma, bins, law}``: each generation's synthetic batch is
    replaced by as many rows drawn from (1 - t) H + t N(0, I), H the bins x bins histogram of the
    batch, t = gamma / (1 + gamma) (``law: paper`` draws what the paper code's rejection sampler
    really draws; see :func:`histogram_mixture_correct`). The truth must be N(0, I) in 2-D."""

    tag_key = "kind"
    name = "histogram"
    gamma: float = knob(1.0, "strength: t = gamma / (1 + gamma) of the rows come from the truth", ge=0.0)
    bins: int = static(10, "histogram bins per axis (the range: the batch's min and max)", ge=1)
    law: Literal["paper", "mixture"] = static(
        "paper", "paper: the law of the paper code's rejection sampler (the histogram cut by its "
        "Gaussian envelope); mixture: exactly (1 - t) H + t N(0, I)")

    def check(self, cfg):
        t = cfg.truth
        standard = getattr(t, "name", None) == "gaussian" and t.dim == 2 and \
            (t.mean is None or all(v == 0 for v in t.mean)) and \
            ((t.cov is None and t.std == 1.0) or (t.cov is not None and np.allclose(t.cov, np.eye(2))))
        if not standard:
            raise ConfigError("correction.kind", "'histogram' corrects toward N(0, I) in 2-D (the paper's toy): "
                              "it needs truth {kind: gaussian, dim: 2} with mean 0 and covariance I")


@register_corrector("histogram", HistogramCorrection)
def make_histogram(o: HistogramCorrection, ctx) -> Stage:
    """Resample the batch from its histogram mixed with N(0, I) (Gillman et al.'s toy)."""

    def apply(key, state, rows, w, knobs):
        t = knobs["gamma"] / (1.0 + knobs["gamma"])
        return state, histogram_mixture_correct(key, rows, t, bins=o.bins, w=w, law=o.law), w
    return Stage(no_state, apply)
