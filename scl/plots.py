"""Figures from a results Dataset: phase diagram (sweep axis x generation) and metric curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

import matplotlib
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

# Figures are built without pyplot: no global state, no backend switch (headless CLI and inline
# notebooks alike); a returned Figure displays itself in Jupyter.

from scl.atomic import save_figure
from scl.phase import draw_boundary


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
    fig = Figure(figsize=(8, 4.2), dpi=110)
    ax = fig.subplots()
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
    if dims:       # where the classification flips (scl.phase); rows sit at their indices here
        draw_boundary(ax, ds, metric, axis=axis, positions=np.arange(len(labels)))
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
    return fig


def _theory_line(ax, theory, metric, axis, v, gens, colour, label):
    """Draw ``theory[metric]`` (scl.theory.predictions) dashed in ``colour`` at ``axis`` = v, the
    other sweep dims at their first value (as :func:`_reduce_other`); True when drawn."""
    if theory is None or metric not in theory.data_vars:
        return False
    th = theory[metric]
    try:
        th = th.sel({d: th[d].values[0] for d in th.dims if d not in ("generation", axis)})
        th = th.sel({axis: v}) if axis else th
        y = th.sel(generation=gens).values
    except (KeyError, ValueError):
        return False
    if not np.any(np.isfinite(y)):
        return False
    ax.plot(gens, y, color=colour, lw=1.2, ls="--", label="theory" if label else "_nolegend_")
    return True


def curves(ds: xr.Dataset, metrics: list[str] | None = None, axis: str | None = None, path=None,
           theory: xr.Dataset | None = None):
    """Metric versus generation, one line per value of ``axis``: median over seeds with the
    25-75% band. One panel per metric. ``theory``: closed-form expected values
    (scl.theory.predictions) drawn dashed in each band's colour, labelled "theory" once."""
    metrics = metrics or list(ds.data_vars)
    dims = sweep_dims(ds)
    axis = axis or (dims[0] if dims else None)
    cols = min(3, len(metrics))
    rows = int(np.ceil(len(metrics) / cols))
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), dpi=110)
    axes = fig.subplots(rows, cols, squeeze=False)
    gens = ds["generation"].values
    cmap = matplotlib.colormaps["viridis"]
    theory_drawn = False
    for ax, metric in zip(axes.flat, metrics):
        da, desc = _reduce_other(ds[metric], [axis] if axis else [])
        values = da[axis].values if axis else [None]
        for i, v in enumerate(values):
            sub = da.sel({axis: v}) if axis else da
            q = sub.quantile([0.25, 0.5, 0.75], dim="seed").values
            colour = cmap(i / max(1, len(values) - 1))
            ax.plot(gens, q[1], color=colour, lw=1.4, label=f"{axis}={v:g}" if axis and isinstance(v, (float, np.floating, int, np.integer)) else (f"{axis}={v}" if axis else None))
            ax.fill_between(gens, q[0], q[2], color=colour, alpha=0.15, lw=0)
            theory_drawn |= _theory_line(ax, theory, metric, axis, v, gens, colour, not theory_drawn)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("generation")
        finite = np.asarray(da.values)[np.isfinite(da.values)]
        if finite.size and np.all(finite > 0):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if theory_drawn:                                  # "theory" last, wherever it was first drawn
        found = [h for a in axes.flat for h, lab in zip(*a.get_legend_handles_labels()) if lab == "theory"]
        keep = [i for i, lab in enumerate(labels) if lab != "theory"]
        handles, labels = [handles[i] for i in keep] + found[:1], [labels[i] for i in keep] + ["theory"]
    if labels:
        fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 0.86, 1))
    else:
        fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def mode_masses(ds: xr.Dataset, axis: str | None = None, path=None):
    """Per-mode mass (metrics ``mode_mass_0..M-1``) versus generation, stacked, mean over seeds;
    one panel per value of ``axis`` (default the first sweep dim; others fixed at their first value)."""
    names = sorted(_mode_mass_names(ds), key=lambda v: int(v.rsplit("_", 1)[1]))
    if not names:
        raise ValueError("no mode_mass_* metrics in these results (add mode_mass to metrics.names)")
    dims = sweep_dims(ds)
    axis = axis or (dims[0] if dims else None)
    values = list(ds[axis].values) if axis else [None]
    fig = Figure(figsize=(3.6 * len(values) + 1.2, 3.4), dpi=110)
    axes = fig.subplots(1, len(values), squeeze=False)
    gens = ds["generation"].values
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    desc = ""
    for ax, v in zip(axes.flat, values):
        stack = []
        for n in names:
            da, desc = _reduce_other(ds[n], [axis] if axis else [])
            stack.append((da.sel({axis: v}) if axis else da).mean("seed").values)
        stack = np.asarray(stack)          # the masses of one probe: they sum to 1, drawn as they are
        ax.stackplot(gens, stack, colors=[colours(i) for i in range(len(names))],
                     labels=[f"mode {i}" for i in range(len(names))])
        ax.set_ylim(0, 1)
        ax.set_xlim(gens[0], gens[-1])
        ax.set_xlabel("generation")
        ax.set_title(f"{axis}={_label(v)}" if axis else "", fontsize=10)
    axes.flat[0].set_ylabel("mass per true mode")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.suptitle(f"{ds.attrs.get('name', '')}: per-mode mass, mean over {ds.sizes['seed']} seeds"
                 + (f" ({desc})" if desc else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    if path is not None:
        save_figure(fig, path)
    return fig


def _mode_mass_names(ds):
    return [str(v) for v in ds.data_vars if str(v).startswith("mode_mass_") and str(v).rsplit("_", 1)[1].isdigit()]


def _label(v):
    return f"{v:g}" if isinstance(v, (float, np.floating, int, np.integer)) else str(v)


def final_heatmap(ds: xr.Dataset, metric: str, x: str | None = None, y: str | None = None,
                  generation: int | None = None, path=None, cmap: str = "viridis"):
    """Heatmap over two sweep dims (x, y; default the first two) of the median over seeds of
    ``metric`` at ``generation`` (default the last); other sweep dims fixed at their first value."""
    dims = sweep_dims(ds)
    if len(dims) < 2 and (x is None or y is None):
        raise ValueError("final_heatmap needs two sweep dims")
    x = x or dims[0]
    y = y or [d for d in dims if d != x][0]
    g = int(ds["generation"].values[-1]) if generation is None else generation
    da, desc = _reduce_other(ds[metric], [x, y])
    med = da.sel(generation=g).median("seed").transpose(y, x).values
    fig = Figure(figsize=(1.0 * ds.sizes[x] + 2.8, 0.6 * ds.sizes[y] + 1.8), dpi=110)
    ax = fig.subplots()
    im = ax.imshow(med, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest")
    ax.set_xticks(range(ds.sizes[x]))
    ax.set_xticklabels([_label(v) for v in ds[x].values])
    ax.set_yticks(range(ds.sizes[y]))
    ax.set_yticklabels([_label(v) for v in ds[y].values])
    for (i, j), v in np.ndenumerate(med):
        ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7,
                color="white" if np.isfinite(v) and v < np.nanmean(med) else "black")
    draw_boundary(ax, ds, metric, x=x, y=y, positions=(np.arange(ds.sizes[x]), np.arange(ds.sizes[y])))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{ds.attrs.get('name', '')}: median {metric}, generation {g}"
                 + (f" ({desc})" if desc else ""), fontsize=9)
    fig.colorbar(im, ax=ax, label=metric)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_all(ds: xr.Dataset, out_dir, theory="auto") -> list[Path]:
    """Write every standard figure of a results Dataset into ``out_dir``; return the paths.
    ``theory``: predictions overlaid on the curves ("auto": from the config in ``ds.attrs``,
    unless its ``metrics.theory`` is false; None: none)."""
    if isinstance(theory, str):
        from scl.summary import theory_for

        theory = theory_for(ds)
    with np.errstate(invalid="ignore", divide="ignore"):       # inf/NaN metrics: flagged by the run
        return _plot_all(ds, Path(out_dir), theory)


def _plot_all(ds: xr.Dataset, out_dir: Path, theory=None) -> list[Path]:
    paths = [out_dir / "phase_diagram.png", out_dir / "curves.png"]
    phase_diagram(ds, path=paths[0])
    curves(ds, path=paths[1], theory=theory)
    if _mode_mass_names(ds):
        paths.append(out_dir / "mode_mass.png")
        mode_masses(ds, path=paths[-1])
    if len(sweep_dims(ds)) >= 2:
        for metric in [v for v in ds.data_vars if str(v) not in _mode_mass_names(ds)][:4]:
            paths.append(out_dir / f"final_{metric}.png")
            final_heatmap(ds, metric, path=paths[-1])
    return paths
