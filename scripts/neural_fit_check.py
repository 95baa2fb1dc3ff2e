"""Generation 0 of each neural family on the 2-D toys: sliced W2 to the truth and scatter plots.

    PYTHONPATH=. python scripts/neural_fit_check.py [--out runs/neural_fit] [--steps 3000]
        [--families flow,flow_spline,diffusion,flow_matching]

For every family (flow with affine couplings, flow_spline = flow with rational-quadratic spline
couplings, diffusion, flow matching) and truth (8 Gaussians, moons, checkerboard): fit on n real
rows from a fresh init, draw n rows, and print the sliced 2-Wasserstein distance to n fresh truth
rows next to the distance between two independent truth samples of the same size (the floor set by
sampling noise), each averaged over a few evaluation keys. Writes one scatter PNG per family (model
samples over the truth, one panel per toy) into --out.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scl.config import Config  # noqa: E402
from scl.data import make_source  # noqa: E402
from scl.families import make_family  # noqa: E402
from scl.metrics.samples import sliced_w2  # noqa: E402
from scl.options import knob_values

FAMILIES = {   # label -> model settings ("family" defaults to the label)
    "flow": {"layers": 8},
    "flow_spline": {"family": "flow", "coupling": "spline", "layers": 8, "bins": 8},
    "diffusion": {"sampler": "ancestral", "sample_steps": 200},
    "flow_matching": {"sampler": "heun", "sample_steps": 50},
}
TRUTHS = ("eight_gaussians", "moons", "checkerboard")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/neural_fit")
    ap.add_argument("--n", type=int, default=2000, help="training rows = evaluation rows")
    ap.add_argument("--steps", type=int, default=3000, help="optimiser steps of generation 0")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--evals", type=int, default=5, help="evaluation keys averaged")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated labels of FAMILIES")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"n = {args.n}, {args.steps} Adam steps, width {args.width}, depth {args.depth}, "
          f"sliced W2 with 128 projections, mean over {args.evals} evaluation keys; device {jax.devices()[0]}")
    print(f"{'family':<14} {'truth':<16} {'SW2(model,truth)':>17} {'SW2(truth,truth)':>17} {'fit s':>7}")
    for family in args.families.split(","):
        extra = FAMILIES[family]
        fig, axes = plt.subplots(1, len(TRUTHS), figsize=(3.2 * len(TRUTHS), 3.3), dpi=80)
        for ax, truth in zip(axes, TRUTHS):
            cfg = Config.from_dict(dict(
                truth={"kind": truth},
                model={"family": family, "width": args.width, "depth": args.depth, "steps": args.steps,
                       "batch_size": 256, "learning_rate": 1e-3, **extra},
                metrics={"names": ["sliced_w2"]}))
            source = make_source(cfg.truth)
            fam = make_family(cfg.model, source)
            knobs = knob_values(cfg.model)
            x = source.sample(jax.random.PRNGKey(0), args.n)
            t0 = time.perf_counter()
            state = jax.block_until_ready(jax.jit(fam.init)(jax.random.PRNGKey(1), x, jnp.ones(args.n), knobs))
            fit_s = time.perf_counter() - t0
            sample = jax.jit(fam.sample, static_argnums=2)
            model_d, truth_d = [], []
            for e in range(args.evals):
                k = jax.random.fold_in(jax.random.PRNGKey(2), e)
                k1, k2, k3, k4 = jax.random.split(k, 4)
                y = sample(k1, state, args.n, knobs)
                ref = source.sample(k2, args.n)
                other = source.sample(k3, args.n)
                model_d.append(float(sliced_w2(k4, y, ref, 128)))
                truth_d.append(float(sliced_w2(k4, other, ref, 128)))
                if e == 0:
                    shown = np.asarray(y)
            print(f"{family:<14} {truth:<16} {np.mean(model_d):17.4f} {np.mean(truth_d):17.4f} {fit_s:7.1f}",
                  flush=True)
            ax.scatter(*np.asarray(x).T, s=2, c="0.75", label="truth", rasterized=True)
            ax.scatter(*shown.T, s=2, c="C3", alpha=0.6, label=family, rasterized=True)
            ax.set_title(f"{truth}\nSW2 {np.mean(model_d):.3f} (truth floor {np.mean(truth_d):.3f})", fontsize=8)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
        axes[0].legend(fontsize=7, markerscale=4, loc="lower left")
        fig.suptitle(f"{family}: generation 0, n = {args.n}", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"{family}.png")
        plt.close(fig)
        print(f"figure: {out / f'{family}.png'}")


if __name__ == "__main__":
    main()
