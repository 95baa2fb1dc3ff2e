"""SIMS negative guidance and Neon weight extrapolation, generic over a guidable model.

SIMS (Alemohammad et al. 2024, *Self-Improving Diffusion Models with Synthetic Data*): each
generation's base model gets an *auxiliary*, a copy of the base fine-tuned on ``aux_samples``
n_s of the base's own samples (plain sampler, temperature 1) for ``aux_steps`` B steps; sampling
then follows the guided predictor

    pred = (1 + w) * pred_base(z, t) - w * pred_aux(z, t),        w = ``sims_weight`` (a knob)

(eps, velocity and score forms agree: each is affine in the score at fixed t). Neon (weight
space): theta = (1 + v) theta_base - v theta_aux, v = ``neon_weight`` (a knob), then the plain
sampler. Both act together: the guided predictor's base term uses the Neon parameters, so
w = v = 0 is the plain sampler bit for bit. With an auxiliary (n_s > 0) every sampling step costs
two network evaluations whatever w (w is vmapped, so it cannot switch code paths).

``temperature`` (a knob, every guidable family): multiplies the sampler's initial noise z_T (or
the flow's z_0) and every injected noise term sigma xi; 1 = the plain sampler, < 1 mode-seeking.

Distribution shifting (``aux_proportions``): the auxiliary's n_s rows are resampled from
``aux_pool`` x n_s base samples so that mode k has share p_k (the modes: the truth's
``source.assign`` or the family's own labels); :func:`aux_proportions_for` gives the p that
move the guided mode shares to a target.

State with an auxiliary: :class:`SimsState` (base, aux), so checkpoints keep it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from scl.errors import ConfigError
from scl.options import knob, static
from scl.families.base import Family
from scl.families.weighted import pick_rows


@dataclass(frozen=True)
class SimsOptions:
    """Mixin of the SIMS / Neon / temperature fields of a guidable family's ``model:`` section."""

    aux_samples: int = static(
        0, "n_s: base samples the auxiliary is fine-tuned on each generation (0: no auxiliary)", ge=0)
    aux_steps: int = static(100, "B: optimiser steps fine-tuning the auxiliary from the base", ge=1)
    aux_pool: int = static(
        4, "with aux_proportions: the n_s auxiliary rows are resampled from aux_pool * n_s base "
           "samples", ge=1)
    aux_proportions: Optional[Tuple[float, ...]] = static(
        None, "mode (class) shares of the auxiliary's training rows (null: the base's own); one "
              "per truth mode (source.assign)", ge=0.0)
    synthetic: Literal["guided", "plain"] = static(
        "guided", "the loop's synthetic rows: guided (the SIMS / Neon sampler the metrics see) or "
                  "plain (the base's plain sampler at the temperature; metrics still see guided)")
    sims_weight: float = knob(
        0.0, "w: guided predictor (1 + w) pred_base - w pred_aux (needs aux_samples > 0)")
    neon_weight: float = knob(
        0.0, "v: Neon parameters (1 + v) theta_base - v theta_aux, then the plain sampler")
    temperature: float = knob(
        1.0, "multiplies the sampler's initial and injected noise (< 1: mode-seeking)", gt=0.0)

    def check_sims(self, cfg, num_modes: Callable[[], int]):
        """ConfigErrors of the SIMS fields (call from the family's ``check``); ``num_modes()``
        counts the modes (called only with aux_proportions: it may build the source)."""
        if self.aux_proportions is not None:
            if self.aux_samples == 0:
                raise ConfigError("model.aux_proportions", "needs model.aux_samples > 0")
            num_modes = num_modes()
            if num_modes == 0:
                raise ConfigError("model.aux_proportions", "needs a truth with separated modes "
                                  "(source.assign) or a family with components")
            if len(self.aux_proportions) != num_modes:
                raise ConfigError("model.aux_proportions", f"expected {num_modes} shares (one per "
                                  f"mode), got {len(self.aux_proportions)}")
            if sum(self.aux_proportions) <= 0:
                raise ConfigError("model.aux_proportions", "shares must not all be 0")


class SimsState(NamedTuple):
    base: Any   # the family's own state
    aux: Any    # the same type: the base fine-tuned on its own samples


class Guidable(NamedTuple):
    """What SIMS needs of a family (all in the family's sampling coordinates z).

    params(state) -> pytree                   what Neon extrapolates
    with_params(state, params) -> state
    predict(state, z [n, d], t [n], cond) -> [n, d]   the network's output (eps, velocity) under
        the batch's condition ``cond`` (None for vector rows)
    sample_with(predict_fn, key, n, temperature) -> z [n, d]
    to_rows(state, z, cond) -> rows           sampling coordinates -> data rows
    fine_tune(key, base_state, x, w, knobs) -> aux state (B steps from the base on x, w)
    project(params) -> params                 Neon's result made valid (e.g. PSD covariances)
    labels(state, rows) -> [n] int            mode of each row (for aux_proportions), optional
    draw(base, aux, key, n, knobs) -> cond   optional: one condition per batch (image rows: the
        class labels [n] and the classifier-free guidance weight), shared by base and auxiliary;
        aux is None for the plain sampler
    """

    params: Callable
    with_params: Callable
    predict: Callable
    sample_with: Callable
    to_rows: Callable
    fine_tune: Callable
    project: Callable = lambda p: p
    labels: Optional[Callable] = None
    draw: Optional[Callable] = None


def extrapolate(base, aux, w):
    """Leafwise (1 + w) * base - w * aux."""
    return jax.tree_util.tree_map(lambda b, a: (1 + w) * b - w * a, base, aux)


def guided(predict_base: Callable, predict_aux: Callable, w) -> Callable:
    """The guided predictor (z, t) -> (1 + w) predict_base(z, t) - w predict_aux(z, t)."""
    return lambda z, t: (1 + w) * predict_base(z, t) - w * predict_aux(z, t)


def _condition(g: Guidable, key, base, aux, n: int, knobs):
    """(cond, key left for the sampler): no split at all for vector rows (same bits as before)."""
    if g.draw is None:
        return None, key
    k_cond, k_rest = jax.random.split(key)
    return g.draw(base, aux, k_cond, n, knobs), k_rest


def plain_sample(g: Guidable, key, state, n: int, knobs, temperature):
    """Rows (n of them) from ``state``'s plain sampler."""
    cond, key = _condition(g, key, state, None, n, knobs)
    z = g.sample_with(lambda z, t: g.predict(state, z, t, cond), key, n, temperature)
    return g.to_rows(state, z, cond)


def guided_sample(g: Guidable, key, s: SimsState, n: int, knobs):
    """Rows of the SIMS + Neon sampler: Neon base (weight v), guided away from aux (w)."""
    cond, key = _condition(g, key, s.base, s.aux, n, knobs)
    neon = g.with_params(s.base, g.project(extrapolate(g.params(s.base), g.params(s.aux),
                                                       knobs["neon_weight"])))
    pred = guided(lambda z, t: g.predict(neon, z, t, cond), lambda z, t: g.predict(s.aux, z, t, cond),
                  knobs["sims_weight"])
    return g.to_rows(s.base, g.sample_with(pred, key, n, knobs["temperature"]), cond)


def proportion_weights(labels, proportions):
    """[m] row weights giving mode k total share p_k among rows with ``labels`` [m]
    (a mode with no row gets none; the rest renormalise)."""
    p = jnp.asarray(proportions, jnp.float32)
    one_hot = jax.nn.one_hot(labels, p.shape[0])                  # [m, K]
    counts = jnp.sum(one_hot, 0)
    return one_hot @ jnp.where(counts > 0, p / jnp.maximum(counts, 1.0), 0.0)


def aux_rows(g: Guidable, o: SimsOptions, key, base, knobs):
    """The auxiliary's training rows [n_s, d] (weights all 1): n_s plain base samples, or with
    ``aux_proportions`` n_s rows resampled from aux_pool * n_s of them with those mode shares."""
    n = o.aux_samples
    if o.aux_proportions is None:
        return plain_sample(g, key, base, n, knobs, 1.0)
    k_draw, k_pick = jax.random.split(key)
    pool = plain_sample(g, k_draw, base, n * o.aux_pool, knobs, 1.0)
    weights = proportion_weights(g.labels(base, pool), o.aux_proportions)
    idx = pick_rows(k_pick, weights, n)
    return jax.tree_util.tree_map(lambda a: a[idx], pool)


def make_aux(g: Guidable, o: SimsOptions, key, base, knobs):
    x = aux_rows(g, o, jax.random.fold_in(key, 0), base, knobs)
    w = jnp.ones((o.aux_samples,), jnp.float32)
    return g.fine_tune(jax.random.fold_in(key, 1), base, x, w, knobs)


def sims_family(family: Family, g: Guidable, o: SimsOptions) -> Family:
    """``family`` with temperature, and with o.aux_samples > 0 a :class:`SimsState` (base, aux)
    refreshed after every fit and the guided / Neon sampler. ``family.sample`` is replaced by the
    guidable sampler (same bits at temperature 1)."""
    if o.aux_samples == 0:
        def sample(key, state, n, knobs):
            return plain_sample(g, key, state, n, knobs, knobs["temperature"])
        return family._replace(sample=sample)

    def init(key, x, w, knobs):
        k_base, k_aux = jax.random.split(key)
        base = family.init(k_base, x, w, knobs)
        return SimsState(base, make_aux(g, o, k_aux, base, knobs))

    def fit(key, state, x, w, knobs):
        k_base, k_aux = jax.random.split(key)
        base = family.fit(k_base, state.base, x, w, knobs)
        return SimsState(base, make_aux(g, o, k_aux, base, knobs))

    def sample(key, state, n, knobs):
        return guided_sample(g, key, state, n, knobs)

    sample_synthetic = None
    if o.synthetic == "plain":
        def sample_synthetic(key, state, n, knobs):
            return plain_sample(g, key, state.base, n, knobs, knobs["temperature"])

    log_prob = None
    if family.log_prob is not None:
        log_prob = lambda state, x: family.log_prob(state.base, x)   # the base's density

    return Family(init=init, fit=fit, sample=sample, log_prob=log_prob,
                  sample_synthetic=sample_synthetic)


def neural_guidable(spec, fine_tune, labels=None, sampling_params=lambda s: s.params,
                    with_sampling_params=lambda s, p: s._replace(params=p)) -> Guidable:
    """The :class:`Guidable` of a neural spec with predict / sample_with (scl.families.neural):
    Neon extrapolates the network parameters; ``fine_tune`` continues the base's network, Adam
    state and standardisation for ``aux_steps`` steps (scl.families.neural.continue_fit).
    Class-conditional specs (image rows): the model is p(y) p(x | y), so the guided law
    p_b^(1+w) / p_a^w factorises: each batch's labels are drawn exactly from the tilted label law
    p_b(y)^(1+w) p_a(y)^-w (p_b, p_a: the base's and the auxiliary's training class shares, p_a
    add-one smoothed; the plain sampler: p_b), images by the guided sampler conditional on them,
    each network's prediction being its classifier-free guided one (1 + g) f(z, t, y) -
    g f(z, t, null), g = the ``guidance`` knob. The modes (aux_proportions) are the labels.
    ``sampling_params(state)`` / ``with_sampling_params(state, params)``: the parameters the
    sampler (and Neon) reads and writes (model.ema: the EMA's; scl.families.neural)."""
    if not spec.num_classes:
        return Guidable(
            params=sampling_params, with_params=with_sampling_params,
            predict=lambda s, z, t, cond: spec.predict(sampling_params(s), z, t), sample_with=spec.sample_with,
            to_rows=lambda s, z, cond: s.shift + s.scale * z, fine_tune=fine_tune,
            labels=None if labels is None else (lambda s, x: labels(x)))

    K = spec.num_classes

    def draw(base, aux, key, n, knobs):
        counts = base.label_counts
        logits = jnp.log(counts)
        if aux is not None:    # the guided label law p_b(y)^(1+w) / p_a(y)^w, exact (labels are
            w = knobs["sims_weight"]         # discrete); p_a add-one smoothed over the K classes
            log_pa = jnp.log((aux.label_counts + 1.0) / (jnp.sum(aux.label_counts) + K))
            tilt = logits - jnp.log(jnp.sum(counts)) - log_pa
            logits = jnp.where(counts > 0, logits + w * jnp.where(counts > 0, tilt, 0.0), -jnp.inf)
        y = jax.random.categorical(key, logits, shape=(n,)).astype(jnp.int32)
        return y, knobs["guidance"]

    def predict(s, z, t, cond):
        y, g = cond
        null = jnp.full(y.shape, spec.num_classes, jnp.int32)
        params = sampling_params(s)
        return (1 + g) * spec.predict(params, z, t, y) - g * spec.predict(params, z, t, null)

    return Guidable(
        params=sampling_params, with_params=with_sampling_params,
        predict=predict, sample_with=spec.sample_with,
        to_rows=lambda s, z, cond: {"x": jnp.clip(s.shift + s.scale * z, -1.0, 1.0), "y": cond[0]},
        fine_tune=fine_tune, labels=lambda s, rows: rows["y"], draw=draw)


def aux_proportions_for(target, base, w) -> np.ndarray:
    """Auxiliary mode shares [K] that move the guided shares to ``target`` [K] from the base's
    ``base`` [K] at guidance weight w > 0.

    For well-separated modes of equal shape, the guided law is ~ p_base^(1+w) / p_aux^w, so mode
    k's guided share is ~ pi_b,k^(1+w) pi_a,k^(-w) (normalised); solving for pi_a gives
    pi_a,k ~ (pi_b,k^(1+w) / target_k)^(1/w). This is the law of the *tilted density*
    p_base^(1+w) / p_aux^w at t = 0; guided DDIM does not sample it exactly (the guided score at
    t > 0 is not that density's diffused score). Measured (analytic family, modes at +-3, cov
    0.1 I, base shares 0.5/0.5, target 0.7, 200 DDIM steps, 20,000 samples, SE 0.003): share
    0.648 at w = 0.5, 0.674 at w = 1: moved toward the target, short of it. On image rows
    (class-conditional networks) the labels are drawn from that tilted law exactly, so there the
    class shares reach the target exactly.
    """
    target, base = np.asarray(target, np.float64), np.asarray(base, np.float64)
    if w <= 0:
        raise ValueError(f"aux_proportions_for needs w > 0, got {w}")
    if np.any(target <= 0) or np.any(base <= 0):
        raise ValueError("aux_proportions_for needs target and base shares > 0")
    log_a = ((1 + w) * np.log(base) - np.log(target)) / w
    a = np.exp(log_a - log_a.max())
    return a / a.sum()
