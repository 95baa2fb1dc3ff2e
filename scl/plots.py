"""Figures from a results Dataset: phase diagram (sweep axis x generation), metric curves, per-mode
masses and sweep x sweep heatmaps.

Every figure's title names the config, the seed count, what the line and band are, and the slice of
the sweep axes it does not draw (``at={dim: value}``, default each one's first value). Axis and
colour-bar labels are the variables' ``long_name [units]`` (scl.results.metric_attrs). Sweep values
sit at their true positions (log spacing when they are log-spaced; strings as labelled categories);
generation ticks are integers; variables with units "count" never get a log axis.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

import matplotlib
from matplotlib.colors import LogNorm, Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

# Figures are built without pyplot: no global state, no backend switch (headless CLI and inline
# notebooks alike); a returned Figure displays itself in Jupyter.

from scl.atomic import save_figure
from scl.phase import draw_boundary

FORMATS = ("png", "pdf", "svg")
BAND = "median, 25–75 % band"
DIVERGING = "RdBu_r"        # ratio to generation 0: blue = shrank, white = unchanged, red = grew
SEQUENTIAL = "viridis"


def sweep_dims(ds) -> list[str]:
    return [str(d) for d in ds.dims if d not in ("seed", "generation")]


def _first_metric(ds):
    return list(ds.data_vars)[0]


# ----------------------------------------------------------------------------- labels and titles

def _label(v):
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    return f"{v:g}" if isinstance(v, (float, np.floating, int, np.integer)) else str(v)


def _num(t: float) -> str:
    """A colour-bar tick as a plain number: 0.01, 0.5, 1, 20, 1e+06."""
    return f"{t:g}"


def long_name(da: xr.DataArray) -> str:
    return str(da.attrs.get("long_name") or da.name)


def axis_label(da: xr.DataArray) -> str:
    """``long_name [units]`` (just the long_name when the units are unknown)."""
    units = da.attrs.get("units")
    return f"{long_name(da)} [{units}]" if units else long_name(da)


def is_count(da: xr.DataArray) -> bool:
    return da.attrs.get("units") == "count"


def _title(ds, what: str, statistic: str, desc: str) -> str:
    """Two lines: ``name: what`` / ``statistic over S seeds · slice``."""
    name = ds.attrs.get("name", "")
    head = f"{name}: {what}" if name else what
    tail = f"{statistic} over {ds.sizes['seed']} seeds"
    return f"{head}\n{tail}" + (f" · {desc}" if desc else "")


def parse_slice(ds, texts) -> dict:
    """``["dim=value", ...]`` (``scl plot --slice``) -> {dim: coordinate value}; an unknown dim or a
    value the run did not sweep is one :class:`scl.errors.ConfigError` naming ``--slice``."""
    from scl.errors import ConfigError

    dims = sweep_dims(ds)
    at = {}
    for text in texts or []:
        dim, eq, value = str(text).partition("=")
        dim, value = dim.strip(), value.strip()
        if not eq or not dim or not value:
            raise ConfigError("--slice", f"expected DIM=VALUE, got {text!r}")
        if dim not in dims:
            raise ConfigError("--slice", f"unknown sweep dim {dim!r}; this run sweeps: "
                              f"{', '.join(dims) if dims else 'nothing'}")
        at[dim] = _match_value(ds, dim, value)
    return at


def _match_value(ds, dim: str, value: str):
    from scl.errors import ConfigError

    coords = list(ds[dim].values)
    for c in coords:
        if _label(c) == value or str(c) == value:
            return c
    try:
        number = float(value)
        for c in coords:
            if isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, (bool, np.bool_)) \
                    and np.isclose(float(c), number, rtol=1e-9, atol=0):
                return c
    except ValueError:
        pass
    raise ConfigError("--slice", f"{dim}={value} was not swept; {dim} takes: {', '.join(_label(c) for c in coords)}")


def _fix_others(da: xr.DataArray, keep: list[str], at: dict | None):
    """Fix every sweep dim not in ``keep`` at ``at[dim]`` (default its first value).

    Returns (da without those dims, "slice dim=v (of a, b, c)" or "")."""
    at = at or {}
    fixed, parts = {}, []
    for d in sweep_dims(da):
        if d in keep:
            continue
        values = list(da[d].values)
        fixed[d] = at.get(d, values[0])
        listing = ", ".join(_label(v) for v in values) if len(values) <= 6 else f"{len(values)} values"
        parts.append(f"{d}={_label(fixed[d])} (of {listing})")
    return (da.sel(fixed) if fixed else da), ("slice " + ", ".join(parts) if parts else "")


def _sliced(ds, at):
    """``ds`` at the slice ``at`` (those dims dropped), for overlays computed from the data."""
    return ds.sel(at) if at else ds


def _free_dims(ds, at) -> list[str]:
    """Sweep dims a figure may draw: those the slice ``at`` does not fix."""
    return [d for d in sweep_dims(ds) if d not in (at or {})]


# ----------------------------------------------------------------------------- axes and colours

def _is_numeric(values) -> bool:
    return len(values) > 0 and all(isinstance(v, (int, float, np.integer, np.floating))
                                   and not isinstance(v, (bool, np.bool_)) for v in values)


def _log_spaced(v: np.ndarray) -> bool:
    """Positive values more evenly spaced in log than linearly, over at least a factor 10."""
    if len(v) < 2 or np.any(v <= 0) or v[-1] / v[0] < 10:
        return False
    if len(v) == 2:
        return v[-1] / v[0] >= 20
    d, dl = np.diff(v), np.diff(np.log(v))
    return np.std(dl) / np.mean(dl) < np.std(d) / np.mean(d)


def _spacing(v: np.ndarray):
    """How sorted distinct sweep values ``v`` are spaced: (scale name, scale kwargs, forward,
    inverse) for matplotlib, or None when they are best drawn as labelled categories.

    "log" for positive log-spaced values; else "linear" when no gap is below 1/40 of the range;
    else "symlog" (linear below the smallest positive value) for 0 followed by log-spaced values
    (0, 0.01, 0.1, 1); else None."""
    if _log_spaced(v):
        return "log", {}, np.log10, lambda t: 10.0 ** t
    readable = np.min(np.diff(v)) >= (v[-1] - v[0]) / 40
    if readable:
        return "linear", {}, (lambda t: t), (lambda t: t)
    if len(v) >= 3 and v[0] == 0 and _log_spaced(v[1:]):
        from matplotlib.scale import SymmetricalLogTransform

        kw = {"base": 10, "linthresh": float(v[1]), "linscale": 1.0}
        forward = SymmetricalLogTransform(kw["base"], kw["linthresh"], kw["linscale"])
        return "symlog", kw, forward.transform_non_affine, forward.inverted().transform_non_affine
    return None


def _cells(values):
    """Cells of one sweep axis. Returns (order, edges [n+1], centres [n], (scale, kwargs), labels):
    numeric values at their true positions (:func:`_spacing`; cell edges halfway between
    neighbours in the scale's coordinates), anything else (a single value, strings, values too
    unevenly spread to read) as evenly spaced labelled categories."""
    values = list(values)
    n = len(values)
    if _is_numeric(values) and n >= 2 and len(set(float(v) for v in values)) == n:
        order = np.argsort(np.asarray(values, float))
        v = np.asarray(values, float)[order]
        spacing = _spacing(v)
        if spacing is not None:
            scale, kw, forward, inverse = spacing
            t = np.asarray(forward(v), float)
            edges = np.concatenate([[t[0] - (t[1] - t[0]) / 2], (t[1:] + t[:-1]) / 2,
                                    [t[-1] + (t[-1] - t[-2]) / 2]])
            return order, np.asarray(inverse(edges), float), v, (scale, kw), [_label(values[i]) for i in order]
    return (np.arange(n), np.arange(n + 1) - 0.5, np.arange(n, dtype=float), ("category", {}),
            [_label(v) for v in values])


def _set_sweep_axis(axis, scale, centres, labels):
    """Ticks at the sweep values themselves (thinned to at most ~12 labels)."""
    name, kw = scale
    if name in ("log", "symlog"):
        (axis.axes.set_yscale if axis is axis.axes.yaxis else axis.axes.set_xscale)(name, **kw)
    step = max(1, int(np.ceil(len(centres) / 12)))
    ticks = [float(c) for c in centres[::step]]
    names = dict(zip(ticks, labels[::step]))
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(
        lambda value, pos: names.get(min(names, key=lambda t: abs(t - value)), "") if names else ""))
    axis.set_minor_locator(NullLocator())


def _integer_generations(ax):
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, integer=True, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel("generation")


def _plain_log_ticks(axis, values):
    """Readable ticks on a log axis: plain numbers (0.2, 1, 10) at :func:`_nice_log_ticks` of the
    finite positive ``values``, unlabelled minor ticks."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return
    axis.set_major_locator(FixedLocator(_nice_log_ticks(v.min(), v.max())))
    axis.set_major_formatter(FuncFormatter(lambda t, pos: _num(t)))
    axis.set_minor_formatter(NullFormatter())


def _nice_log_ticks(lo: float, hi: float) -> list[float]:
    """Readable ticks in [lo, hi] (lo > 0): powers of ten, or 1-2-5 steps within two decades."""
    k0, k1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    decades = [10.0 ** k for k in range(k0, k1 + 1) if lo * (1 - 1e-9) <= 10.0 ** k <= hi * (1 + 1e-9)]
    if len(decades) >= 3:
        step = max(1, int(np.ceil(len(decades) / 9)))
        mid = decades.index(1.0) if 1.0 in decades else 0
        return [t for i, t in enumerate(decades) if (i - mid) % step == 0]
    ticks = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    if len(ticks) < 3:
        ticks = sorted({lo, *ticks, hi})
    return ticks


def _colour_scale(values: np.ndarray, kind: str, count: bool = False):
    """(norm, cmap, ticks or None) for an array of colours. ``kind``: "ratio" (log, diverging,
    centred at 1), "symlog" (diverging, centred at 0), "auto" (log if positive over more than a
    decade and not a count, else linear)."""
    finite = values[np.isfinite(values)]
    if kind == "ratio":
        positive = finite[finite > 0]
        span = max(positive.max(), 1 / positive.min()) if positive.size else 10.0
        span = float(np.clip(span, 10 ** 0.5, 1e8))
        return LogNorm(1 / span, span), _cmap(DIVERGING), _nice_log_ticks(1 / span, span)
    if kind == "symlog":
        span = float(np.abs(finite).max()) if finite.size else 1.0
        span = span if span > 0 else 1.0
        nonzero = np.abs(finite[finite != 0])
        linthresh = float(max(np.percentile(nonzero, 25) if nonzero.size else span, span * 1e-4))
        linthresh = 10.0 ** np.floor(np.log10(linthresh))
        pos = [10.0 ** k for k in range(int(np.log10(linthresh)), int(np.floor(np.log10(span))) + 1)]
        step = max(1, int(np.ceil(len(pos) / 4)))
        pos = pos[::-1][::step][::-1]
        return (SymLogNorm(linthresh, vmin=-span, vmax=span, base=10), _cmap(DIVERGING),
                sorted([-t for t in pos] + [0.0] + pos))
    positive = finite[finite > 0]
    if not count and finite.size and positive.size == finite.size and positive.max() / positive.min() > 10:
        return LogNorm(positive.min(), positive.max()), _cmap(SEQUENTIAL), _nice_log_ticks(positive.min(), positive.max())
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return Normalize(lo, hi if hi > lo else lo + 1), _cmap(SEQUENTIAL), None


def _cmap(name):
    return matplotlib.colormaps[name].with_extremes(bad="0.75")      # NaN: grey


def _colorbar(fig, im, ax, label: str, ticks, count: bool = False, clipped: bool = False):
    """``clipped``: the norm's ends cut the data (ratio, symlog): arrow ends."""
    bar = fig.colorbar(im, ax=ax, label=label, extend="both" if clipped else "neither")
    if ticks is not None:
        bar.set_ticks(ticks)
        bar.set_ticklabels([_num(t) for t in ticks])
        bar.ax.yaxis.set_minor_locator(NullLocator())
    elif count:
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return bar


def _clip_for(values: np.ndarray, norm) -> np.ndarray:
    """Replace ±inf (and, on a log norm, values <= 0) by values beyond the norm's ends, so they
    take the colour bar's end colours instead of vanishing; NaN stays NaN (grey)."""
    v = np.array(values, dtype=float)
    lo, hi = norm.vmin, norm.vmax
    below = lo / 10 if isinstance(norm, LogNorm) else lo - abs(hi - lo)
    above = hi * 10 if isinstance(norm, LogNorm) else hi + abs(hi - lo)
    v[np.isneginf(v)] = below
    v[np.isposinf(v)] = above
    if isinstance(norm, LogNorm):
        v[v <= 0] = below
    return v


# ----------------------------------------------------------------------------- figures

def phase_colour(da: xr.DataArray, colour: str = "auto") -> tuple[xr.DataArray, str, str]:
    """What the phase diagram paints for one metric [..., seed, generation] -> (values without seed,
    kind, description). ``colour``: "ratio" = median over seeds of the per-seed ratio
    metric_t / metric_0 (log colour scale, diverging at 1); "raw" = median over seeds of the metric
    itself; "auto" = ratio for a non-negative non-count metric with a positive generation 0, the
    raw metric on a symmetric-log diverging scale when it takes both signs (logdet_ratio), else
    the raw metric (log scale when positive over more than a decade, linear for counts and for
    negative metrics such as a reward)."""
    values = np.asarray(da.values, float)
    finite = values[np.isfinite(values)]
    first = np.asarray(da.isel(generation=0).values, float)
    if colour == "auto":
        if is_count(da) or not finite.size:
            colour = "raw"
        elif np.all(finite >= 0) and np.all(np.isfinite(first)) and np.all(first > 0):
            colour = "ratio"
        elif np.any(finite < 0) and np.any(finite > 0):
            colour = "symlog"
        else:
            colour = "raw"
    if colour == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            return (da / da.isel(generation=0)).median("seed"), "ratio", \
                "median over seeds of the per-seed ratio to generation 0"
    med = da.median("seed")
    return med, ("symlog" if colour == "symlog" else "auto"), "median"


def phase_diagram(ds: xr.Dataset, metric: str | None = None, axis: str | None = None,
                  path=None, colour: str = "auto", at: dict | None = None):
    """Heatmap: y = ``axis`` (default the first sweep dim not fixed by ``at``) at its true values,
    x = generation, colour = :func:`phase_colour` of ``metric`` (default: the ratio to generation
    0 on a log scale). Other sweep dims at ``at`` (default their first value). The axes are in data
    coordinates (generation, sweep value), so an overlay (a phase boundary) draws directly.
    Returns the matplotlib Figure (saved to ``path`` if given)."""
    metric = metric or _first_metric(ds)
    dims = _free_dims(ds, at)
    da = ds[metric]
    if axis is None and dims:
        axis = dims[0]
    da, desc = _fix_others(da, [axis] if axis else [], at)
    values, kind, statistic = phase_colour(da, colour)
    gens = ds["generation"].values
    if axis:
        order, y_edges, centres, scale, labels = _cells(da[axis].values)
        grid = values.transpose(axis, "generation").values[order]
    else:
        order, y_edges, centres, scale, labels = np.arange(1), np.array([-0.5, 0.5]), np.zeros(1), ("category", {}), [""]
        grid = values.values[None, :]
    norm, cmap, ticks = _colour_scale(grid, "ratio" if kind == "ratio" else kind, count=is_count(da))
    rows = len(centres)
    fig = Figure(figsize=(8, max(3.6, min(9.0, 2.2 + 0.28 * rows))), dpi=110)
    ax = fig.subplots()
    x_edges = np.concatenate([gens - 0.5, [gens[-1] + 0.5]])
    im = ax.pcolormesh(x_edges, y_edges, _clip_for(grid, norm), norm=norm, cmap=cmap, shading="flat",
                       rasterized=True)
    _integer_generations(ax)
    if axis:
        _set_sweep_axis(ax.yaxis, scale, centres, labels)
        ax.set_ylabel(axis)
    else:
        ax.set_yticks([])
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    if axis:       # where the classification flips (scl.phase), at the rows' drawn positions
        positions = np.empty(len(centres))
        positions[order] = centres
        draw_boundary(ax, _sliced(ds, at), metric, axis=axis, positions=positions, edges=y_edges)
    what = f"{long_name(da)}, ratio to generation 0" if kind == "ratio" else axis_label(da)
    statistic = "median of the per-seed ratios" if kind == "ratio" else statistic
    ax.set_title(_title(ds, what, statistic, desc), fontsize=9)
    _colorbar(fig, im, ax, "ratio to generation 0" if kind == "ratio" else axis_label(da), ticks,
              count=is_count(da), clipped=kind in ("ratio", "symlog"))
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def _log_y(da_values: np.ndarray, count: bool) -> bool:
    """Log y for positive, non-count values spanning more than a decade."""
    finite = da_values[np.isfinite(da_values)]
    return (not count and finite.size > 0 and bool(np.all(finite > 0))
            and finite.max() / finite.min() > 10)


def _theory_line(ax, theory, metric, axis, v, gens, colour, label, at=None):
    """Draw ``theory[metric]`` (scl.theory.predictions) dashed in ``colour`` at ``axis`` = v, the
    other sweep dims at ``at`` (default their first value, as :func:`_fix_others`); True when drawn."""
    if theory is None or metric not in theory.data_vars:
        return False
    th = theory[metric]
    try:
        th = th.sel({d: (at or {}).get(d, th[d].values[0]) for d in th.dims if d not in ("generation", axis)})
        th = th.sel({axis: v}) if axis else th
        y = th.sel(generation=gens).values
    except (KeyError, ValueError):
        return False
    if not np.any(np.isfinite(y)):
        return False
    ax.plot(gens, y, color=colour, lw=1.2, ls="--", label="theory" if label else "_nolegend_")
    return True


def curves(ds: xr.Dataset, metrics: list[str] | None = None, axis: str | None = None, path=None,
           at: dict | None = None, theory: xr.Dataset | None = None):
    """Metric versus generation, one line per value of ``axis`` (default the first sweep dim not
    fixed by ``at``): median over seeds with the 25-75 % band; one panel per metric, one legend.
    ``theory``: closed-form expected values (scl.theory.predictions) drawn dashed in each band's
    colour, labelled "theory" once."""
    metrics = metrics or list(ds.data_vars)
    dims = _free_dims(ds, at)
    axis = axis or (dims[0] if dims else None)
    cols = min(3, len(metrics))
    rows = int(np.ceil(len(metrics) / cols))
    fig = Figure(figsize=(4.6 * cols + 1.4, 3.4 * rows + 0.5), dpi=110, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    gens = ds["generation"].values
    cmap = matplotlib.colormaps[SEQUENTIAL]
    desc = ""
    theory_drawn = False
    for ax, metric in zip(axes.flat, metrics):
        da, desc = _fix_others(ds[metric], [axis] if axis else [], at)
        values = list(da[axis].values) if axis else [None]
        drawn = []
        for i, v in enumerate(values):
            sub = da.sel({axis: v}) if axis else da
            q = sub.quantile([0.25, 0.5, 0.75], dim="seed").values
            drawn.append(q)
            colour = cmap(i / max(1, len(values) - 1)) if axis else "C0"
            ax.plot(gens, q[1], color=colour, lw=1.4, label=f"{axis}={_label(v)}" if axis else "median")
            ax.fill_between(gens, q[0], q[2], color=colour, alpha=0.15, lw=0,
                            label=None if axis else "25–75 % band")
            theory_drawn |= _theory_line(ax, theory, metric, axis, v, gens, colour, not theory_drawn, at)
        ax.set_title(long_name(da), fontsize=9)
        ax.set_ylabel(axis_label(da), fontsize=8)
        _integer_generations(ax)
        ax.set_xlim(gens[0], gens[-1])
        if _log_y(np.asarray(drawn), is_count(da)):
            ax.set_yscale("log")
            _plain_log_ticks(ax.yaxis, np.asarray(drawn))
        elif is_count(da):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(_title(ds, "metrics per generation", BAND, desc), fontsize=10)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if theory_drawn:                                  # "theory" last, wherever it was first drawn
        found = [h for a in axes.flat for h, lab in zip(*a.get_legend_handles_labels()) if lab == "theory"]
        keep = [i for i, lab in enumerate(labels) if lab != "theory"]
        handles, labels = [handles[i] for i in keep] + found[:1], [labels[i] for i in keep] + ["theory"]
    if labels:
        fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    if path is not None:
        save_figure(fig, path)
    return fig


def mode_masses(ds: xr.Dataset, axis: str | None = None, path=None, at: dict | None = None):
    """Per-mode mass (metrics ``mode_mass_0..M-1``) versus generation, stacked, mean over seeds;
    one panel per value of ``axis`` (default the first sweep dim not fixed by ``at``; others at
    ``at``, default their first value)."""
    names = sorted(_mode_mass_names(ds), key=lambda v: int(v.rsplit("_", 1)[1]))
    if not names:
        raise ValueError("no mode_mass_* metrics in these results (add mode_mass to metrics.names)")
    dims = _free_dims(ds, at)
    axis = axis or (dims[0] if dims else None)
    values = list(ds[axis].values) if axis else [None]
    fig = Figure(figsize=(3.6 * len(values) + 1.2, 3.7), dpi=110, layout="constrained")
    axes = fig.subplots(1, len(values), squeeze=False, sharey=True)
    gens = ds["generation"].values
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    desc = ""
    for ax, v in zip(axes.flat, values):
        stack = []
        for n in names:
            da, desc = _fix_others(ds[n], [axis] if axis else [], at)
            stack.append((da.sel({axis: v}) if axis else da).mean("seed").values)
        stack = np.asarray(stack)          # the masses of one probe: they sum to 1, drawn as they are
        ax.stackplot(gens, stack, colors=[colours(i) for i in range(len(names))],
                     labels=[f"mode {i}" for i in range(len(names))])
        ax.set_ylim(0, 1)
        ax.set_xlim(gens[0], gens[-1])
        _integer_generations(ax)
        ax.set_title(f"{axis}={_label(v)}" if axis else "", fontsize=9)
    units = ds[names[0]].attrs.get("units")
    axes.flat[0].set_ylabel("mass per true mode" + (f" [{units}]" if units else ""))
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(_title(ds, "per-mode mass, stacked", "mean", desc), fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def class_shares(ds: xr.Dataset, axis: str | None = None, path=None, at: dict | None = None):
    """Class shares of the model's samples (metrics ``class_share_0..K-1``) versus generation as
    stacked areas: the median over seeds of each share, renormalised to sum to 1 per generation
    (each seed's shares sum to 1; their medians need not). One panel per value of ``axis``
    (default the first sweep dim not fixed by ``at``; other dims at ``at``, default their first)."""
    names = sorted(_class_share_names(ds), key=lambda v: int(v.rsplit("_", 1)[1]))
    if not names:
        raise ValueError("no class_share_* metrics in these results (add class_share to metrics.names)")
    dims = _free_dims(ds, at)
    axis = axis or (dims[0] if dims else None)
    values = list(ds[axis].values) if axis else [None]
    fig = Figure(figsize=(3.6 * len(values) + 1.2, 3.7), dpi=110, layout="constrained")
    axes = fig.subplots(1, len(values), squeeze=False, sharey=True)
    gens = ds["generation"].values
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    desc = ""
    for ax, v in zip(axes.flat, values):
        stack = []
        for n in names:
            da, desc = _fix_others(ds[n], [axis] if axis else [], at)
            stack.append((da.sel({axis: v}) if axis else da).median("seed").values)
        stack = np.asarray(stack, float)
        total = stack.sum(0)
        stack = np.where(total > 0, stack / np.where(total > 0, total, 1.0), 0.0)
        ax.stackplot(gens, stack, colors=[colours(i) for i in range(len(names))],
                     labels=[f"class {n.rsplit('_', 1)[1]}" for n in names])
        ax.set_ylim(0, 1)
        ax.set_xlim(gens[0], gens[-1])
        _integer_generations(ax)
        ax.set_xlabel("generation")
        ax.set_title(f"{axis}={_label(v)}" if axis else "", fontsize=9)
    axes.flat[0].set_ylabel("share of the model's samples per class [1]")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(_title(ds, "class shares, stacked", "median (renormalised to 1)", desc), fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def _class_share_names(ds):
    return [str(v) for v in ds.data_vars if str(v).startswith("class_share_") and str(v).rsplit("_", 1)[1].isdigit()]


def _mode_mass_names(ds):
    return [str(v) for v in ds.data_vars if str(v).startswith("mode_mass_") and str(v).rsplit("_", 1)[1].isdigit()]


def _categories(values):
    """:func:`_cells` as evenly spaced labelled categories, in increasing order when numeric."""
    values = list(values)
    order = np.argsort(np.asarray(values, float)) if _is_numeric(values) else np.arange(len(values))
    n = len(values)
    return order, np.arange(n + 1) - 0.5, np.arange(n, dtype=float), ("category", {}), [_label(values[i]) for i in order]


def final_heatmap(ds: xr.Dataset, metric: str, x: str | None = None, y: str | None = None,
                  generation: int | None = None, path=None, cmap: str = SEQUENTIAL, at: dict | None = None):
    """Heatmap over two sweep dims (x, y; default the first two not fixed by ``at``) of the median
    over seeds of ``metric`` at ``generation`` (default the last), each value annotated; other
    sweep dims at ``at`` (default their first value). Sweep values are labelled categories in
    increasing order (cell i at position i: annotated cells stay readable however uneven the
    values). Log colours for a positive non-count metric spanning more than a decade."""
    dims = _free_dims(ds, at)
    if len(dims) < 2 and (x is None or y is None):
        raise ValueError("final_heatmap needs two sweep dims")
    x = x or [d for d in dims if d != y][0]
    y = y or [d for d in dims if d != x][0]
    g = int(ds["generation"].values[-1]) if generation is None else generation
    da, desc = _fix_others(ds[metric], [x, y], at)
    xo, x_edges, xc, xscale, xlabels = _categories(da[x].values)
    yo, y_edges, yc, yscale, ylabels = _categories(da[y].values)
    med = da.sel(generation=g).median("seed").transpose(y, x).values[np.ix_(yo, xo)]
    norm, colours, ticks = _colour_scale(med, "auto", count=is_count(da))
    if cmap != SEQUENTIAL:
        colours = _cmap(cmap)
    fig = Figure(figsize=(min(12.0, 0.9 * len(xc) + 3.4), min(9.0, 0.55 * len(yc) + 2.2)), dpi=110)
    ax = fig.subplots()
    im = ax.pcolormesh(x_edges, y_edges, _clip_for(med, norm), norm=norm, cmap=colours, shading="flat",
                       rasterized=True)
    _set_sweep_axis(ax.xaxis, xscale, xc, xlabels)
    _set_sweep_axis(ax.yaxis, yscale, yc, ylabels)
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    for (i, j), v in np.ndenumerate(med):
        shade = norm(_clip_for(np.array([v]), norm))[0] if np.isfinite(v) else 1.0
        ax.text(xc[j], yc[i], f"{v:.2g}", ha="center", va="center", fontsize=7,
                color="white" if np.ma.getdata(shade) < 0.45 else "black")
    px, py = np.empty(len(xc)), np.empty(len(yc))      # drawn position of each value, in ds order
    px[xo], py[yo] = xc, yc
    draw_boundary(ax, _sliced(ds, at), metric, x=x, y=y, positions=(px, py))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(_title(ds, f"{long_name(da)} at generation {g}", "median", desc), fontsize=9)
    _colorbar(fig, im, ax, axis_label(da), ticks, count=is_count(da))
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


# ----------------------------------------------------------------------------- all figures

def check_format(format: str) -> str:
    from scl.errors import ConfigError

    if format not in FORMATS:
        raise ConfigError("--format", f"must be one of {', '.join(FORMATS)}, got {format!r}")
    return format


def _slice_suffix(at: dict | None) -> str:
    """File-name suffix of a slice: ``{"K": 4, "beta": 0.5}`` -> ``_K4_beta0.5``."""
    return "".join(f"_{d}{_label(v)}".replace("/", "-").replace(" ", "") for d, v in (at or {}).items())


def plot_all(ds: xr.Dataset, out_dir, theory="auto", format: str = "png", at: dict | None = None) -> list[Path]:
    """Write every standard figure of a results Dataset into ``out_dir`` as ``format`` (png, pdf or
    svg); return the paths. ``theory``: predictions overlaid on the curves ("auto": from the config
    in ``ds.attrs``, unless its ``metrics.theory`` is false; None: none). ``at`` ({dim: value})
    picks the slice of the sweep axes a figure does not draw (file names then end in
    ``_<dim><value>``)."""
    check_format(format)
    if isinstance(theory, str):
        from scl.summary import theory_for

        theory = theory_for(ds)
    with np.errstate(invalid="ignore", divide="ignore"):       # inf/NaN metrics: flagged by the run
        return _plot_all(ds, Path(out_dir), format, at or {}, theory)


def _plot_all(ds: xr.Dataset, out_dir: Path, format: str, at: dict, theory=None) -> list[Path]:
    end = f"{_slice_suffix(at)}.{format}"
    paths = [out_dir / f"phase_diagram{end}", out_dir / f"curves{end}"]
    phase_diagram(ds, path=paths[0], at=at)
    stacked = set(_mode_mass_names(ds)) | set(_class_share_names(ds))
    others = [str(v) for v in ds.data_vars if str(v) not in stacked]
    curves(ds, others or None, path=paths[1], at=at, theory=theory)          # the mode masses have their own figure
    if _mode_mass_names(ds):
        paths.append(out_dir / f"mode_mass{end}")
        mode_masses(ds, path=paths[-1], at=at)
    if _class_share_names(ds):
        paths.append(out_dir / f"class_shares{end}")
        class_shares(ds, path=paths[-1], at=at)
    if len(_free_dims(ds, at)) >= 2:
        for metric in others[:4]:
            paths.append(out_dir / f"final_{metric}{end}")
            final_heatmap(ds, metric, path=paths[-1], at=at)
    return paths
