"""Shared machinery of the neural families (flow, diffusion, flow matching): options, training.

A neural family is a :class:`NeuralSpec` (how to initialise, score and sample one network, in
*standardised* coordinates z = (x - shift) / scale) turned into a :class:`~scl.families.Family`
by :func:`neural_family`. Every generation trains a fixed number of optimiser steps (static) on
minibatches of ``batch_size`` rows drawn with replacement from the weighted training buffer
(row i with probability w_i / sum w), so absent rows (w = 0) are never seen. Everything is pure
and vmappable: the learning rate and gradient clip are knobs (arrays), the step count is static.

Optimiser: optax.chain(clip_by_global_norm(grad_clip), scale_by_adam(), scale(-learning_rate))
under ``optax.inject_hyperparams``, so the learning rate and the clip norm live in the optimiser
state; :func:`train` writes them from the (vmapped) knobs before its steps, since a warm-started
generation carries the previous generation's state.

EMA (``model.ema`` = decay d, null: off): the state also keeps the bias-corrected exponential
moving average of the parameters after every optimiser step k = 1, 2, ...,

    E_k = sum_{j<=k} (1 - d) d^(k-j) theta_j / (1 - d^k),   i.e.
    E_k = E_(k-1) + (theta_k - E_(k-1)) (1 - d) / (1 - d^k)      (E_1 = theta_1)

(optax.incremental_update with that step size; the initial weights get no share, so short fits
are not dragged toward the random init). Sampling, ``predict`` as SIMS uses it, Neon and
log_prob use E; warm starts continue E and its count (a SIMS auxiliary fine-tuned for
aux_steps B << 1 / (1 - d) steps therefore keeps an EMA close to its base's). With ema null the
state's ``ema`` is () and every result is bit for bit what it was before EMA existed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from scl.options import knob, static
from scl.families.base import Family
from scl.families.weighted import present_count

@dataclass(frozen=True)
class NeuralOptions:
    """Settings shared by every neural family (``model:`` section)."""

    width: int = static(128, "hidden units per layer", ge=1)
    depth: int = static(3, "hidden layers per network", ge=1)
    steps: int = static(300, "optimiser steps per generation when fine-tuning (warm_start: true)", ge=1)
    init_steps: Optional[int] = static(
        None, "optimiser steps for a network trained from a fresh init (generation 0, and every "
              "generation when warm_start is false); default: steps", ge=1)
    batch_size: int = static(256, "rows per minibatch, drawn with probability proportional to w", ge=1)
    warm_start: bool = static(
        True, "true: fine-tune the previous generation's network and Adam state; false: retrain "
              "from a fresh init every generation")
    matmul_precision: Literal["fp32", "bf16"] = static(
        "fp32", "dtype of the networks' matmuls: fp32, or bf16 (bfloat16 operands, float32 "
                "accumulation, params and Adam state; the tensor-core / MXU rate on GPU and TPU)")
    ema: Optional[float] = static(
        None, "decay d of an exponential moving average of the weights, updated every optimiser "
              "step and used for sampling (null: off; typical 0.999)", gt=0.0, lt=1.0)
    learning_rate: float = knob(1e-3, "Adam step size", gt=0.0)
    grad_clip: float = knob(1.0, "clip gradients to this global norm", gt=0.0)
    label_dropout: float = static(
        0.1, "image rows (class-conditional): share of training rows whose label is replaced by the "
             "null label, so the network also learns the unconditional model", ge=0.0, lt=1.0)
    guidance: float = knob(
        0.0, "image rows: classifier-free guidance weight g, sampling with (1 + g) f(z, t, y) - "
             "g f(z, t, null) (f: the noise prediction or velocity); 0 = the conditional model", ge=0.0)

    image_rows = False      # the families whose networks take image rows (class-conditional)

    def check(self, cfg):
        from scl.families.weighted import require_rows, truth_rows

        from scl.registry import SOURCES

        image = self.image_rows and truth_rows(cfg.truth) == "image"
        if not image:
            require_rows(cfg, "vector", self.name)
        if hasattr(self, "check_network"):                    # network choice (scl.families.networks)
            self.check_network(image)
        if hasattr(self, "check_sims"):                       # SIMS hook (scl.families.sims)
            def num_modes():
                source = SOURCES[cfg.truth.name].make(cfg.truth)
                return num_classes_of(source) if image else source.num_modes
            self.check_sims(cfg, num_modes)

    @property
    def fresh_steps(self) -> int:
        return self.init_steps or self.steps


def num_classes_of(source) -> int:
    """K of an image truth (class-conditional networks), 0 for vector rows."""
    params = source.params or {}
    return int(params["num_classes"]) if "image_shape" in params else 0


def truth_dim(cfg) -> int:
    """Dimension of the configured truth (its options' ``dim``; 2 for the 2-D toys)."""
    return int(getattr(cfg.truth, "dim", 2))


class NeuralSpec(NamedTuple):
    """One network, in standardised coordinates z.

    init(key) -> params
    loss(params, key, z [B, d]) -> scalar training loss
    sample(params, key, n) -> z [n, d]
    log_prob(params, z [n, d]) -> [n]     optional exact log-density

    Families whose sampler is driven by one network output (diffusion: the noise prediction eps;
    flow matching: the velocity) also split ``sample`` into the two parts guidance needs:

    predict(params, z [n, d], t [n]) -> [n, d]      the network's output at noise level/time t
    sample_with(predict_fn, key, n) -> z [n, d]     the sampler driven by any such function,
        so ``sample(params, key, n) == sample_with(lambda z, t: predict(params, z, t), key, n)``
        and a guided sampler combines two predictors linearly (eps, velocity and score forms
        of the same combination agree, each being affine in the score at fixed t).
    """

    init: Callable
    loss: Callable
    sample: Callable
    log_prob: Optional[Callable] = None
    predict: Optional[Callable] = None
    sample_with: Optional[Callable] = None
    num_classes: int = 0     # K > 0: class-conditional (image rows): loss(params, key, z, y) and
                             # predict(params, z, t, y), y in {0..K} (K: the null label)


class NeuralState(NamedTuple):
    params: Any          # flax parameter pytree
    opt_state: Any       # optax InjectStatefulHyperparamsState: hyperparams, Adam moments and count
    shift: jax.Array     # [d] weighted mean of the data the network was initialised on
    scale: jax.Array     # [d] weighted std of that data (z = (x - shift) / scale)
    loss: jax.Array      # scalar: mean training loss over the last quarter of the latest steps
    label_counts: Any = ()   # image rows: [K] class counts of the latest training set (what the
                             # sampler draws labels from); () for vector rows
    ema: Any = ()            # model.ema: an EmaState; () when off


class EmaState(NamedTuple):
    count: jax.Array     # int32 scalar: optimiser steps averaged so far
    params: Any          # their bias-corrected exponential moving average (the params pytree)


def ema_update(ema: EmaState, params, decay: float) -> EmaState:
    """One step of the bias-corrected EMA: E_k = E_(k-1) + (params - E_(k-1)) (1 - d) / (1 - d^k)."""
    count = ema.count + 1
    d = jnp.float32(decay)
    step = (1 - d) / (1 - d ** count)             # exactly 1 at k = 1 (same float32 rounding)
    return EmaState(count, optax.incremental_update(params, ema.params, step))


def ema_init(params) -> EmaState:
    """The EMA before any step (its params get weight 0 at the first update)."""
    return EmaState(jnp.int32(0), params)


def sampling_params(state: NeuralState):
    """The parameters the sampler uses: the EMA's with model.ema, else the trained ones."""
    return state.ema.params if isinstance(state.ema, EmaState) else state.params


def with_sampling_params(state: NeuralState, params) -> NeuralState:
    """``state`` with the parameters :func:`sampling_params` reads replaced (Neon)."""
    if not isinstance(state.ema, EmaState):
        return state._replace(params=params)
    return state._replace(ema=state.ema._replace(params=params))


def _optimiser(learning_rate, grad_clip):
    return optax.chain(optax.clip_by_global_norm(grad_clip), optax.scale_by_adam(),
                       optax.scale(-learning_rate))


# the values here are placeholders: train() sets both hyperparameters from the knobs
OPTIMISER = optax.inject_hyperparams(_optimiser)(learning_rate=1e-3, grad_clip=1.0)


def with_hyperparams(opt_state, knobs):
    """``opt_state`` with its learning rate and clip norm set from ``knobs`` (traced scalars)."""
    hp = {name: jnp.asarray(knobs[name], old.dtype) for name, old in opt_state.hyperparams.items()}
    return opt_state._replace(hyperparams=hp)


def standardisation(x, w):
    """Weighted mean [d] and standard deviation [d] of rows x [N, d] with weights w [N]."""
    total = jnp.sum(w)
    shift = jnp.sum(w[:, None] * x, 0) / total
    var = jnp.sum(w[:, None] * (x - shift) ** 2, 0) / total
    return shift, jnp.sqrt(jnp.maximum(var, 1e-12))


def train(spec: NeuralSpec, key, params, opt_state, z, w, knobs, steps: int, batch_size: int,
          labels=None, label_dropout: float = 0.0, ema: Optional[EmaState] = None,
          ema_decay: Optional[float] = None):
    """``steps`` Adam steps on minibatches drawn uniformly with replacement from the training rows
    of z [N, d] (weights w [N]: 1 on the rows present, 0 on padding); ``labels`` [N] (conditional
    specs): each minibatch row's label is replaced by the null label w.p. ``label_dropout``.

    Returns (params, opt_state, losses [steps]); with ``ema`` (an EmaState) and ``ema_decay``,
    (params, opt_state, losses, ema) with the EMA updated after every step.
    """
    # the mixers put the rows present first (weight 1), so a minibatch row is a uniform integer
    # below their count, counted once; jax.random.randint here, not scl.rng.uniform_below, whose
    # rejection loop would run inside every vmapped step (a third slower for small networks)
    count = jnp.maximum(present_count(w), 1)

    def one(carry, k):
        params, opt_state, ema = carry
        k_rows, k_loss = jax.random.split(k)
        idx = jax.random.randint(k_rows, (batch_size,), 0, count)
        if labels is None:
            loss, grads = jax.value_and_grad(spec.loss)(params, k_loss, z[idx])
        else:
            k_loss, k_drop = jax.random.split(k_loss)
            y = jnp.where(jax.random.uniform(k_drop, (batch_size,)) < label_dropout, spec.num_classes, labels[idx])
            loss, grads = jax.value_and_grad(spec.loss)(params, k_loss, z[idx], y)
        updates, opt_state = OPTIMISER.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if ema is not None:
            ema = ema_update(ema, params, ema_decay)
        return (params, opt_state, ema), loss

    # the knobs are fixed within one fit: set once, they are the hyperparameters of every step
    opt_state = with_hyperparams(opt_state, knobs)
    (params, opt_state, ema_out), losses = jax.lax.scan(one, (params, opt_state, ema),
                                                        jax.random.split(key, steps))
    if ema is None:
        return params, opt_state, losses
    return params, opt_state, losses, ema_out


def image_standardisation(x, w):
    """One weighted mean and standard deviation over every pixel of image rows x [N, D], as [D]
    arrays (per-pixel ones would divide by ~0 on the always-blank border pixels of digits)."""
    total = jnp.sum(w) * x.shape[1]
    shift = jnp.sum(w[:, None] * x) / total
    scale = jnp.sqrt(jnp.maximum(jnp.sum(w[:, None] * (x - shift) ** 2) / total, 1e-12))
    return jnp.full((x.shape[1],), shift), jnp.full((x.shape[1],), scale)


def label_counts(y, w, num_classes: int):
    """[K] weighted class counts of labels y [N] (weights w [N])."""
    return jnp.zeros((num_classes,), jnp.float32).at[y].add(w)


def fresh_fit(spec: NeuralSpec, o: NeuralOptions, key, x, w, knobs, steps: int | None = None):
    """A network trained from a fresh init on x [N, d] (or image rows {"x", "y"}), w [N].
    Returns (NeuralState, losses [steps])."""
    steps = steps or o.fresh_steps
    if spec.num_classes:
        shift, scale = image_standardisation(x["x"], w)
    else:
        shift, scale = standardisation(x, w)
    k_init, k_train = jax.random.split(key)
    params = spec.init(k_init)
    ema = () if o.ema is None else ema_init(params)
    return continue_fit(spec, o, k_train, NeuralState(params, OPTIMISER.init(params), shift, scale,
                                                      jnp.float32(0.0), ema=ema), x, w, knobs, steps)


def continue_fit(spec: NeuralSpec, o: NeuralOptions, key, state: NeuralState, x, w, knobs, steps: int):
    """Fine-tune ``state`` for ``steps`` more steps on x, w. Returns (NeuralState, losses [steps])."""
    pixels, labels = (x["x"], x["y"]) if spec.num_classes else (x, None)
    z = (pixels - state.shift) / state.scale
    ema = None if o.ema is None else state.ema
    out = train(spec, key, state.params, state.opt_state, z, w, knobs, steps, o.batch_size,
                labels, o.label_dropout, ema, o.ema)
    params, opt_state, losses = out[:3]
    tail = jnp.mean(losses[-max(1, steps // 4):])
    counts = label_counts(labels, w, spec.num_classes) if spec.num_classes else ()
    return NeuralState(params, opt_state, state.shift, state.scale, tail, counts,
                       () if ema is None else out[3]), losses


def conditional_sample(spec: NeuralSpec, state: NeuralState, key, n: int, guidance):
    """Image rows {"x": [n, D] clipped to [-1, 1], "y": [n]}: labels drawn from the training set's
    class counts, images with classifier-free guidance weight ``guidance``."""
    k_y, k_x = jax.random.split(key)
    y = jax.random.categorical(k_y, jnp.log(state.label_counts), shape=(n,)).astype(jnp.int32)
    null = jnp.full((n,), spec.num_classes, jnp.int32)

    params = sampling_params(state)

    def guided(z, t):
        return ((1 + guidance) * spec.predict(params, z, t, y)
                - guidance * spec.predict(params, z, t, null))
    z = spec.sample_with(guided, k_x, n)
    return {"x": jnp.clip(state.shift + state.scale * z, -1.0, 1.0), "y": y}


def neural_family(spec: NeuralSpec, o: NeuralOptions, labels=None) -> Family:
    """The :class:`Family` of a spec: init trains from scratch; fit warm-starts or re-inits.
    A spec with ``predict`` and options with the SIMS fields get scl.families.sims's sampler
    (temperature, auxiliary, guidance, Neon); ``labels(x) -> [n]`` modes for aux_proportions."""

    def init(key, x, w, knobs):
        return fresh_fit(spec, o, key, x, w, knobs)[0]

    def fit(key, state, x, w, knobs):
        if o.warm_start:
            return continue_fit(spec, o, key, state, x, w, knobs, o.steps)[0]
        return init(key, x, w, knobs)

    def sample(key, state, n, knobs):
        if spec.num_classes:
            return conditional_sample(spec, state, key, n, knobs["guidance"])
        return state.shift + state.scale * spec.sample(sampling_params(state), key, n)

    log_prob = None
    if spec.log_prob is not None:
        def log_prob(state, x):
            z = (x - state.shift) / state.scale
            return spec.log_prob(sampling_params(state), z) - jnp.sum(jnp.log(state.scale))

    family = Family(init=init, fit=fit, sample=sample, log_prob=log_prob)
    if spec.predict is not None and hasattr(o, "sims_weight"):          # SIMS hook
        from scl.families.sims import neural_guidable, sims_family
        def fine_tune(key, base, x, w, knobs):       # the auxiliary: aux_steps more steps
            return continue_fit(spec, o, key, base, x, w, knobs, o.aux_steps)[0]
        family = sims_family(family, neural_guidable(spec, fine_tune, labels, sampling_params,
                                                      with_sampling_params), o)
    return family
