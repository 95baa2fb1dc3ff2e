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
