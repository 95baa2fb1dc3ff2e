"""The engine: one generation as a pure step, scanned over generations, vmapped over configurations.

    step(state, root_key, knobs, t) -> (state, metrics)      one generation, one configuration
    chunk = jit( scan over L generations ( vmap over configurations ( step ) ) )

The configuration axis C flattens (knob-grid point, seed) with seeds fastest. Keys: one root key
per seed, ``fold_in(PRNGKey(cfg.seed), seed)``, shared by every grid point (common random
numbers); generation t uses ``fold_in(root, t)``, so results do not depend on chunking.

A family that fits from sufficient statistics (Gaussian) skips the rows where that is exact: the
step draws each training set's count, mean and scatter directly (:mod:`scl.moments`).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from scl import moments, rng
from scl.data import make_source
from scl.families import make_family
from scl.grid import grid_of, knob_tree  # noqa: F401  (knob_tree: re-exported for scripts)
from scl.metrics import MetricContext, make_metrics
from scl.mixing import Pool, RegimeContext, make_regime
from scl.probe import make_probe, needs_of
from scl.registry import CORRECTORS, CURATORS, METRICS, REGIMES
from scl.stages import StageContext, chain


class LoopState(NamedTuple):
    model: Any    # the family's state pytree
    mix: Any      # the mixer's state (fixed real set, accumulated pool, ...)
    stages: Any   # {section: state} of the stages (k-means centres, ...)


# Keys of one generation, in the order split from fold_in(root, t).
KEY_NAMES = ("sample", "curate", "correct", "real", "mix", "fit", "metrics", "spare")

# The stage sections of a config, in the order they act on synthetic rows, each with its table
# and the generation key it uses.
STAGE_SECTIONS = (("curation", CURATORS, "curate"), ("correction", CORRECTORS, "correct"))


def generation_keys(root_key, t):
    """{name: key} of generation t. Key i is ``fold_in(fold_in(root, t), i)``: with JAX's default
    partitionable threefry that is ``split(fold_in(root, t), 8)[i]`` bit for bit (one threefry
    block on the counter (0, i)), but XLA drops the keys a step never reads, where a split hashes
    all 8 (on the Gaussian grid: 31.5 ms versus 3.8 ms for one key of 1024 x 500, 2-core CPU)."""
    key = jax.random.fold_in(root_key, t)
    if not jax.config.jax_threefry_partitionable:       # then split and fold_in differ: keep split's bits
        return dict(zip(KEY_NAMES, jax.random.split(key, len(KEY_NAMES))))
    return {name: jax.random.fold_in(key, i) for i, name in enumerate(KEY_NAMES)}


def stage_chain(cfg, source, rows: int, family=None):
    """The config's stages chained (curation, then correction), and the keys they use."""
    ctx = StageContext(source, cfg.truth, rows, cfg.loop.n, family)
    named = [(section, table[getattr(cfg, section).name].make(getattr(cfg, section), ctx))
             for section, table, _ in STAGE_SECTIONS if getattr(cfg, section, None) is not None]
    key_names = {section: key for section, _, key in STAGE_SECTIONS}

    def keys(k):                    # a generation's key dict -> {section: key}
        return {section: k[key_names[section]] for section, _ in named}

    def init_keys(k0):              # generation 0's -> one key per stage for its init
        return {section: jax.random.fold_in(k0["spare"], i)
                for i, (section, _, _) in enumerate(STAGE_SECTIONS) if section in dict(named)}

    return chain(named), keys, init_keys


class Program(NamedTuple):
    """Compiled pieces for one static configuration.

    init(root_keys [C], knobs {..: [C]}) -> (states, metrics {name: [C]})        generation 0
    chunk(states, root_keys, knobs, t0) -> (states, metrics {name: [L, C]})      generations
        t0 .. t0+L-1; generations past ``generations`` leave the state unchanged and give NaN.
    step(state, root_key, knobs, t) -> (state, metrics)      one generation, one configuration
    """

    init: Callable
    chunk: Callable
    step: Callable
    init_one: Callable
    metric_names: tuple
    chunk_size: int
    generations: int


def over_configs(fn: Callable, batch_size: int | None) -> Callable:
    """``fn`` mapped over the leading (configuration) axis of every argument: one vmap, or with
    ``batch_size`` a ``lax.map`` over slices of that many configurations (less memory)."""
    if not batch_size:
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda a: fn(*a), args, batch_size=batch_size)


_PROGRAMS: dict = {}


def build_program(cfg, lam_max: float | None = None, chunk_size: int | None = None,
                  keep_models: bool = False) -> Program:
    """The compiled loop for ``cfg``'s static settings; configs that differ only in knob values,
    sweeps of knobs, seeds or name share one Program (and its compiled code).

    ``lam_max``: the largest lambda of the sweep (default: from ``Grid(cfg)``).
    ``keep_models``: ``chunk`` returns ``(states, (metrics, models))``, models = the model state
    of every generation of the chunk, leaves [L, C, ...] (for per-generation checkpoints)."""
    from scl.config import structure_key

    rng.use_unrolled_threefry()     # same bits as JAX's CPU default, faster (scl.rng); once per process
    if not REGIMES[cfg.loop.regime].traits.get("capacity_from_lam"):
        lam_max = 0.0                 # no buffer sized by lambda: one program for every grid
    elif lam_max is None:
        lam_max = grid_of(cfg).lam_max
    key = (structure_key(cfg), lam_max, chunk_size, keep_models)
    if key not in _PROGRAMS:
        if len(_PROGRAMS) >= 16:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = _build_program(cfg, lam_max, chunk_size, keep_models)
    return _PROGRAMS[key]


def uses_statistics(cfg, family, regime) -> bool:
    """Whether the engine draws training statistics instead of rows for ``cfg``.

    ``model.draw``: ``rows`` never; ``statistics`` always (validated by the family's check);
    ``auto`` wherever it is exact (:func:`scl.moments.statistics_possible`)."""
    draw_opt = getattr(cfg.model, "draw", "rows")
    if draw_opt == "rows" or family.fit_moments is None or family.sampling_gaussian is None \
            or regime.statistics is None:
        return False
    return draw_opt == "statistics" or moments.statistics_possible(cfg) is None


def _build_program(cfg, lam_max: float, chunk_size: int | None, keep_models: bool = False) -> Program:
    """Static setup in Python; returns the pure, jitted functions of the loop (PureJaxRL style)."""
    loop = cfg.loop
    source = make_source(cfg.truth)
    family = make_family(cfg.model, source)
    regime = make_regime(loop, RegimeContext(loop.n, loop.synthetic_rows, loop.generations,
                                             max(lam_max, loop.lam_value), source))
    mixer = regime.rows
    stages, stage_keys, stage_init_keys = stage_chain(cfg, source, mixer.synthetic_rows, family)
    metric_fns = make_metrics(MetricContext(family, source, cfg.metrics, cfg))
    probe = make_probe(family, source, cfg.metrics.samples, needs_of(cfg.metrics.names, METRICS))
    statistics = regime.statistics if uses_statistics(cfg, family, regime) else None
    names = tuple(metric_fns)
    generations = loop.generations
    L = chunk_size or cfg.run.chunk_size

    def measure(key, model, knobs):
        shared = probe(key, model, knobs)          # drawn once, read by every metric
        return {name: metric_fns[name](shared, model, knobs).astype(jnp.float32) for name in names}

    # accumulate with a family that stores its training rows (KDE): the pool lives in the model
    # state only (carried once, not copied every generation); the mixer's state is rebuilt from it
    pool_in_model = mixer.state_is_training_set and family.training_set is not None

    def carried(model, mix_state, stage_states):
        return LoopState(model, () if pool_in_model else mix_state, stage_states)

    def mixer_state(state):
        return Pool(*family.training_set(state.model)) if pool_in_model else state.mix

    def init_one(root_key, knobs):
        k = generation_keys(root_key, 0)
        real = source.sample(k["real"], loop.n)
        if statistics:
            mix_state, x, w = statistics.init(real), real, jnp.ones((loop.n,), jnp.float32)
        else:
            mix_state, x, w = mixer.init(k["mix"], real)
        model = family.init(k["fit"], x, w, knobs["model"])
        return carried(model, mix_state, stages.init(stage_init_keys(k), real)), measure(k["metrics"], model, knobs)

    def step_statistics(state, root_key, knobs, t):
        k = generation_keys(root_key, t)
        model_gaussian = family.sampling_gaussian(state.model, knobs["model"])
        mix_state, train = statistics.mix(k["sample"], state.mix, model_gaussian, knobs["loop"])
        model = family.fit_moments(k["fit"], state.model, train, knobs["model"])
        return LoopState(model, mix_state, state.stages), measure(k["metrics"], model, knobs)

    def step(state, root_key, knobs, t):
        if statistics:
            return step_statistics(state, root_key, knobs, t)
        k = generation_keys(root_key, t)
        count = mixer.synthetic_rows * stages.candidates_per_row
        if stages.sample is not None:       # a stage drawing its own rows from the model (exact tilt)
            candidates = stages.sample(k["sample"], state.model, count, knobs)
        else:
            sampler = family.sample_synthetic or family.sample     # the loop's rows' sampler
            candidates = sampler(k["sample"], state.model, count, knobs["model"])
        stage_states, syn, w_syn = stages.apply(stage_keys(k), state.stages, candidates,
                                                jnp.ones((count,), jnp.float32), knobs)
        fresh = source.sample(k["real"], mixer.fresh_real_rows) if mixer.fresh_real_rows else None
        mix_state, x, w = mixer.mix(k["mix"], mixer_state(state), fresh, syn, knobs["loop"], t,
                                    w_syn if stages.weighted else None)
        model = family.fit(k["fit"], state.model, x, w, knobs["model"])
        return carried(model, mix_state, stage_states), measure(k["metrics"], model, knobs)

    batch = cfg.run.config_batch_size

    def vstep(states, keys, knobs, t):
        return over_configs(lambda s, k, kn: step(s, k, kn, t), batch)(states, keys, knobs)

    @jax.jit
    def init(root_keys, knobs):
        return over_configs(init_one, batch)(root_keys, knobs)

    @jax.jit
    def chunk(states, root_keys, knobs, t0):
        def live(states, t):
            return vstep(states, root_keys, knobs, t)

        def body(states, t):
            shapes = jax.eval_shape(live, states, t)[1]
            dead = lambda s, t: (s, jax.tree_util.tree_map(lambda a: jnp.full(a.shape, jnp.nan, a.dtype), shapes))
            states, metrics = jax.lax.cond(t <= generations, live, dead, states, t)
            return states, ((metrics, states.model) if keep_models else metrics)

        return jax.lax.scan(body, states, t0 + jnp.arange(L))

    return Program(init, chunk, step, init_one, names, L, generations)


def flat_inputs(cfg):
    """Root keys [C] and knob tree of [C] arrays for the knob grid x seeds (seeds fastest)."""
    return grid_of(cfg).inputs()


def shard_configs(tree, count: int):
    """Spread the configuration axis (leading, size ``count``) over every device of every process
    (a global ``jax.sharding.Mesh``; in one process: its local devices); pads it to a multiple of
    the device count by repeating the last configuration. ``tree``: the same host arrays on every
    process; each puts its own slice on its devices. Returns (tree, padded count); on one device
    the tree is unchanged."""
    devices = jax.devices()
    if len(devices) == 1:
        return tree, count
    padded = -(-count // len(devices)) * len(devices)
    if padded != count:
        tree = jax.tree_util.tree_map(
            lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], padded - count, 0)])
            if jax.process_count() == 1 else
            np.concatenate([np.asarray(a), np.repeat(np.asarray(a)[-1:], padded - count, 0)]), tree)
    mesh = jax.sharding.Mesh(np.array(devices), ("config",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("config"))
    if jax.process_count() == 1:
        return jax.device_put(tree, spec), padded

    def put(a):
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, spec, lambda index: host[index])

    return jax.tree_util.tree_map(put, tree), padded
