"""Samples of the last generation of a stability config, one panel per real fraction.

    PYTHONPATH=. python scripts/stability_scatter.py configs/stability_flow_matching.yaml \
        [--fractions 0,0.5,1] [--out runs/stability_flow_matching/final_samples.png]

Runs the config (one seed) through the engine, then draws ``metrics.samples`` rows from each final
model: the fully synthetic loop loses or blurs modes, real fractions >= 0.5 keep them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scl.config import load_config  # noqa: E402
from scl.data import make_source  # noqa: E402
from scl.grid import knob_tree  # noqa: E402
from scl.families import make_family  # noqa: E402
from scl.simulate import run_variant  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--fractions", default="0,0.5,1")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    fractions = [float(f) for f in args.fractions.split(",")]
    cfg = load_config(args.config, [("seeds", 1), ("sweep", {"loop.real_fraction": fractions}),
                                    ("run.progress", False)])
    metrics, states = run_variant(cfg)
    source = make_source(cfg.truth)
    family = make_family(cfg.model, source)
    knobs = knob_tree(cfg)["model"]
    sample = jax.jit(family.sample, static_argnums=2)
    truth = np.asarray(source.sample(jax.random.PRNGKey(0), cfg.metrics.samples))
    G = cfg.loop.generations
    fig, axes = plt.subplots(1, len(fractions), figsize=(3.0 * len(fractions), 3.2), dpi=80,
                             sharex=True, sharey=True, squeeze=False)     # every panel on the same axes
    for i, (ax, f) in enumerate(zip(axes.flat, fractions)):
        state = jax.tree_util.tree_map(lambda a: a[i], states.model)
        y = np.asarray(sample(jax.random.PRNGKey(1), state, cfg.metrics.samples, knobs))
        name = cfg.metrics.names[0]
        ax.scatter(*truth.T, s=2, c="0.75", rasterized=True)
        ax.scatter(*y.T, s=2, c="C3", alpha=0.6, rasterized=True)
        ax.set_title(f"real_fraction {f:g}: {name} {metrics[name][0, i]:.3g} -> {metrics[name][G, i]:.3g}",
                     fontsize=7)
        ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{cfg.name}: generation {G} (red) over the truth (grey), seed 0", fontsize=9)
    fig.tight_layout()
    out = Path(args.out or Path("runs") / cfg.name / "final_samples.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
