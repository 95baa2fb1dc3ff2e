"""The grid of one static variant, built once: swept points, their coordinates, the flattened
configuration axis, the knob pytree and the root keys.

The configuration axis C flattens (knob-grid point p, seed s) as c = p * S + s (seeds fastest).
Every reader (engine, results, checkpoints, ``load_generation``, device choice) takes these from
one :class:`Grid`. Keys: seed s has root key ``fold_in(PRNGKey(cfg.seed), s)``, shared by every
grid point (common random numbers make curves across a sweep comparable).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from scl.options import knob_values


def dim_name(path: str) -> str:
    """The results dimension of a swept setting: its last path component."""
    return path.rpartition(".")[2]


def knob_tree(cfg) -> dict:
    """{section: {name: float}}: the numeric settings the compiled step reads for one config
    (every section with knob fields; ``loop`` and ``model`` always)."""
    tree = {}
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if dataclasses.is_dataclass(section) and (f.name in ("loop", "model") or knob_values(section)):
            tree[f.name] = knob_values(section)
    return tree


@functools.lru_cache(maxsize=32)
def grid_of(cfg) -> "Grid":
    """The Grid of ``cfg``, built once per config (a run reads it several times)."""
    return Grid(cfg)


class Grid:
    """The knob sweep x seeds of one static variant ``cfg`` (a Config).

    axes: [(path, values)] knob sweeps in config order; dims: their results dimensions;
    shape: their lengths; points: [(coords, cfg)] one per grid point in C order; seeds: S;
    size: C = len(points) * S.
    """

    def __init__(self, cfg):
        self.config = cfg
        self.axes = cfg.knob_axes
        self.dims = tuple(dim_name(p) for p, _ in self.axes)
        self.shape = tuple(len(v) for _, v in self.axes)
        self.points = cfg.knob_grid()
        self.seeds = cfg.seeds
        self.size = len(self.points) * self.seeds

    @functools.cached_property
    def knobs(self) -> dict:
        """Knob tree of float32 NumPy arrays [C] (seeds fastest)."""
        import jax

        trees = [knob_tree(c) for _, c in self.points]
        return jax.tree_util.tree_map(lambda *v: np.repeat(np.asarray(v, np.float32), self.seeds), *trees)

    @property
    def lam_max(self) -> float:
        """The largest lambda = #synthetic/#real of the sweep (fixed_real's buffer capacity)."""
        return float(np.max(self.knobs["loop"]["lam"]))

    def root_keys(self):
        """[C, 2] uint32 root keys: seed s's key for every grid point."""
        import jax
        import jax.numpy as jnp

        base = jax.random.PRNGKey(self.config.seed)
        per_seed = jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(self.seeds))
        return jnp.tile(per_seed, (len(self.points), 1))

    def inputs(self):
        """(root keys [C, 2], knob tree of jnp float32 [C]) for the compiled program."""
        import jax
        import jax.numpy as jnp

        return self.root_keys(), jax.tree_util.tree_map(jnp.asarray, self.knobs)

    def configurations(self) -> list[dict]:
        """Configuration c's coordinates: {swept knob: value, ..., "seed": s}."""
        return [dict(coords, seed=s) for coords, _ in self.points for s in range(self.seeds)]

    def unflatten(self, a: np.ndarray, axis: int = -1) -> np.ndarray:
        """``a`` with its axis ``axis`` of length C split into (*shape, S), moved to the end."""
        a = np.moveaxis(np.asarray(a), axis, -1)
        return a.reshape(a.shape[:-1] + self.shape + (self.seeds,))
