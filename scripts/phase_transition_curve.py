"""Fu et al.'s phase transition as a curve: the seed mean of a metric against the swept lambda,
one line per generation, with +-2 standard-error bars, and the table behind it.

    scl run configs/phase_transition_kde.yaml -o runs/phase_transition_kde
    python scripts/phase_transition_curve.py runs/phase_transition_kde/results.nc [--metric tv_density] [-o FIG.png]

Prints, for the last generation, mean +- SE at each lambda and the peak's excess over the first
and last lambda in standard errors (unpaired).
"""
from __future__ import annotations

import argparse

import numpy as np
import xarray as xr
from matplotlib.figure import Figure


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--metric", default="tv_density")
    ap.add_argument("-o", "--out", default=None, help="figure path (default: beside the results)")
    args = ap.parse_args()
    ds = xr.open_dataset(args.results)
    da = ds[args.metric]
    lam = da["lam"].values
    mean = da.mean("seed").transpose("generation", "lam").values             # [G+1, L]
    se = (da.std("seed", ddof=1) / np.sqrt(da.sizes["seed"])).transpose("generation", "lam").values
    x = np.where(lam > 0, lam, lam[lam > 0].min() / 4)                        # lambda = 0 drawn at the left
    fig = Figure(figsize=(5.2, 3.6), dpi=120)
    ax = fig.subplots()
    for g in range(1, mean.shape[0]):
        ax.errorbar(x, mean[g], 2 * se[g], marker="o", ms=3, capsize=2, label=f"generation {g}")
    ax.axhline(mean[0, 0], color="grey", ls=":", label="generation 0 (real rows only)")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}" for v in lam])
    ax.set_xlabel("lambda = synthetic rows / real rows (0 drawn at the left)")
    ax.set_ylabel(da.attrs.get("long_name", args.metric))
    ax.set_title(f"{ds.attrs.get('name', '')}: mean over {da.sizes['seed']} seeds, bars +-2 SE", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = args.out or args.results.rsplit("/", 1)[0] + "/phase_transition_curve.png"
    fig.savefig(out)
    last = mean.shape[0] - 1
    peak = int(np.argmax(mean[last]))
    for i, v in enumerate(lam):
        print(f"lam={v:g}: {mean[last, i]:.4f} +- {se[last, i]:.4f}")
    z = lambda i: (mean[last, peak] - mean[last, i]) / np.hypot(se[last, peak], se[last, i])
    print(f"peak at lam={lam[peak]:g}: {z(0):.1f} SE above lam={lam[0]:g}, {z(-1):.1f} SE above lam={lam[-1]:g}")
    print(out)


if __name__ == "__main__":
    main()
