"""Figures from a results Dataset: phase diagram (sweep axis x generation) and metric curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402

from scl.atomic import save_figure  # noqa: E402


def sweep_dims(ds: xr.Dataset) -> list[str]:
    return [d for d in ds.dims if d not in ("seed", "generation")]


def _first_metric(ds):
    return list(ds.data_vars)[0]


def _reduce_other(da: xr.DataArray, keep: list[str]):
    """Fix every sweep dim not in ``keep`` at its first value; return (da, description)."""
    fixed = {d: da[d].values[0] for d in da.dims if d not in keep + ["seed", "generation"]}
    desc = ", ".join(f"{k}={v}" for k, v in fixed.items())
    return (da.sel(fixed) if fixed else da), desc


def phase_diagram(ds: xr.Dataset, metric: str | None = None, axis: str | None = None,
                  path=None, log: bool | None = None):
    """Heatmap: y = ``axis`` (default the first sweep dim), x = generation, colour = median over
    seeds of ``metric``. Returns the matplotlib Figure (saved to ``path`` if given)."""
    metric = metric or _first_metric(ds)
    dims = sweep_dims(ds)
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    da = ds[metric]
    if not dims:
        med = da.median("seed").values[None, :]
        labels, axis = [""], "config"
    else:
        axis = axis or dims[0]
        da, desc = _reduce_other(da, [axis])
        med = da.median("seed").transpose(axis, "generation").values
        labels = [f"{v:g}" if isinstance(v, (float, np.floating)) else str(v) for v in da[axis].values]
    finite = med[np.isfinite(med)]
    positive = finite[finite > 0]
    if log is None:
        log = positive.size == finite.size and positive.size > 0 and positive.max() / max(positive.min(), 1e-30) > 20
    norm = LogNorm(vmin=max(positive.min(), positive.max() * 1e-4), vmax=positive.max()) if log and positive.size \
        else Normalize(vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 1)
    gens = ds["generation"].values
    im = ax.imshow(np.where(np.isfinite(med), med, np.nan), aspect="auto", origin="lower",
                   interpolation="nearest", cmap="magma", norm=norm,
                   extent=[gens[0] - 0.5, gens[-1] + 0.5, -0.5, len(labels) - 0.5])
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_xlabel("generation")
    ax.set_ylabel(axis)
    title = f"{ds.attrs.get('name', '')}: median {metric} over {ds.sizes['seed']} seeds"
    if dims and desc:
        title += f"  ({desc})"
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label=metric)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
        plt.close(fig)
    return fig


def curves(ds: xr.Dataset, metrics: list[str] | None = None, axis: str | None = None, path=None):
    """Metric versus generation, one line per value of ``axis``: median over seeds with the
    25-75% band. One panel per metric."""
    metrics = metrics or list(ds.data_vars)
    dims = sweep_dims(ds)
    axis = axis or (dims[0] if dims else None)
    cols = min(3, len(metrics))
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), dpi=110, squeeze=False)
    gens = ds["generation"].values
    cmap = plt.get_cmap("viridis")
    for ax, metric in zip(axes.flat, metrics):
        da, desc = _reduce_other(ds[metric], [axis] if axis else [])
        values = da[axis].values if axis else [None]
        for i, v in enumerate(values):
            sub = da.sel({axis: v}) if axis else da
            q = sub.quantile([0.25, 0.5, 0.75], dim="seed").values
            colour = cmap(i / max(1, len(values) - 1))
            ax.plot(gens, q[1], color=colour, lw=1.4, label=f"{axis}={v:g}" if axis and isinstance(v, (float, np.floating, int, np.integer)) else (f"{axis}={v}" if axis else None))
            ax.fill_between(gens, q[0], q[2], color=colour, alpha=0.15, lw=0)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("generation")
        if np.all(np.asarray(da.values)[np.isfinite(da.values)] > 0):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 0.86, 1))
    else:
        fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
        plt.close(fig)
    return fig


def plot_all(ds: xr.Dataset, out_dir) -> list[Path]:
    """Write every standard figure of a results Dataset into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / "phase_diagram.png", out_dir / "curves.png"]
    phase_diagram(ds, path=paths[0])
    curves(ds, path=paths[1])
    return paths
