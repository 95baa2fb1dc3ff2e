"""Small builders shared by tests."""
import numpy as np

import scl
from scl.simulate import run_variant


def gaussian_cfg(dim=1, n=10, generations=10, seeds=10_000, regime="replace", estimator="mle",
                 chunk_size=None, metrics=("trace_ratio", "logdet_ratio", "mean_sqerr"), draw="auto", **loop):
    return scl.Config.from_dict({
        "name": "theory", "seeds": seeds, "seed": 1,
        "truth": {"kind": "gaussian", "dim": dim},
        "model": {"family": "gaussian", "estimator": estimator, "draw": draw},
        "loop": {"generations": generations, "n": n, "regime": regime, **loop},
        "metrics": {"names": list(metrics)},
        "run": {"chunk_size": chunk_size or generations, "progress": False},
    })


def final_states(cfg):
    """Metrics {name: [G+1, C]} and the final states of a config without sweeps."""
    metrics, states = run_variant(cfg)
    return metrics, states


def as_np(tree):
    import jax
    return jax.tree_util.tree_map(np.asarray, tree)


def stage_of(make, options, source=None, truth=None, rows: int = 0, n: int = 0, key=None, real=None):
    """(stage, state): a stage built like the engine builds it, initialised on ``real`` rows."""
    import jax

    from scl.stages import StageContext

    stage = make(options, StageContext(source, truth, rows, n))
    state = stage.init(jax.random.PRNGKey(0) if key is None else key, real)
    return stage, state


def rows_only(stage, state=()):
    """``fn(key, rows, knobs) -> rows``: a stage's apply with all rows present, rows kept only."""
    import jax.numpy as jnp

    def fn(key, rows, knobs):
        n = rows.shape[0]
        return stage.apply(key, state, rows, jnp.ones((n,), jnp.float32), knobs)[1]
    return fn
