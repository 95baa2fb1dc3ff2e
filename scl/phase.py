"""Phase boundaries: classify each sweep point as collapsing or stable, draw where that flips, and
locate the critical knob value by successive grid refinement (:func:`boundary`, ``scl refine``).

**Criterion** (host-side, NumPy). For one metric and one sweep point with S seeds and generations
0..G, let W be the last half of the generations (g >= ceil(G/2)), a_s the mean of the metric over W
for seed s and b_s its value at generation 0. The statistic is

    ratio       R = mean_s a_s / mean_s b_s      (metrics that stay > 0: distances, spreads)
    difference  D = mean_s a_s - mean_s b_s      (metrics that can be <= 0: logdet_ratio)

with a (1 - alpha) interval over seeds: the delta-method standard error of the ratio (of the
difference: exact), z_s = (a_s - R b_s) / mean_s b_s, SE = sd(z) / sqrt(S), times Student's t
quantile with S - 1 degrees of freedom (better calibrated than a normal or bootstrap percentile
interval at a handful of seeds). The *bad direction* of a metric (a distance growing: "up"; a
spread or diversity shrinking: "down") comes from :data:`DIRECTIONS` (or a ``direction`` trait of
its registry entry). With threshold T = 1 + tol ("up") or 1 - tol ("down") for a ratio, +tol or
-tol for a difference, a point is labelled

    collapsing   when the whole interval lies beyond T in the bad direction,
    stable       otherwise (not shown to collapse).

So noise alone calls a point whose true statistic is at T (or better) collapsing with probability
at most alpha / 2 (one side of the interval): 2.5 % at the default level 0.95. Fewer than 2 seeds
give no interval, hence no collapsing label.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from scl.errors import ConfigError

# metric -> (bad direction, scale). "up": collapse makes it grow; "down": collapse makes it shrink.
DIRECTIONS: dict[str, tuple[str, str]] = {
    "w2": ("up", "ratio"), "sliced_w2": ("up", "ratio"), "mmd": ("up", "ratio"),
    "sinkhorn": ("up", "ratio"), "tv": ("up", "ratio"), "kl_data_model": ("up", "ratio"),
    "kl_model_data": ("up", "ratio"), "nll": ("up", "difference"), "mean_sqerr": ("up", "ratio"),
    "regression_error": ("up", "ratio"), "mode_mass_max": ("up", "ratio"),
    "trace_ratio": ("down", "ratio"), "logdet_ratio": ("down", "difference"),
    "surviving_categories": ("down", "ratio"), "simpson_diversity": ("down", "ratio"),
    "modes_covered": ("down", "ratio"), "mode_mass_min": ("down", "ratio"),
    "mode_entropy": ("down", "ratio"), "diversity": ("down", "ratio"), "reward_var": ("down", "ratio"),
    "frechet_feature_distance": ("up", "ratio"), "precision": ("down", "ratio"),
    "recall": ("down", "ratio"), "coverage": ("down", "ratio"), "feature_diversity": ("down", "ratio"),
    "class_entropy": ("down", "difference"),
}
LABELS = ("stable", "collapsing")


def metric_direction(metric: str, direction: str | None = None, scale: str | None = None) -> tuple[str, str]:
    """(direction, scale) of ``metric``: the arguments where given, else :data:`DIRECTIONS`, else a
    ``direction`` / ``scale`` trait of its registry entry. Raises ConfigError("metric") if unknown."""
    from scl import registry

    known = DIRECTIONS.get(metric)
    traits = registry.METRICS[metric].traits if metric in registry.METRICS else {}
    if known is None and "direction" in traits:
        known = (traits["direction"], traits.get("scale", "ratio"))
    if direction is None:
        if known is None:
            raise ConfigError("metric", f"{metric!r} has no known collapse direction; pass direction='up' "
                              f"(collapse makes it grow) or 'down' (shrink). Known: {', '.join(DIRECTIONS)}")
        direction = known[0]
    if direction not in ("up", "down"):
        raise ConfigError("direction", f"must be 'up' or 'down', got {direction!r}")
    scale = scale or (known[1] if known else "ratio")
    if scale not in ("ratio", "difference"):
        raise ConfigError("scale", f"must be 'ratio' or 'difference', got {scale!r}")
    return direction, scale


def threshold_of(direction: str, scale: str, tol: float) -> float:
    """T: 1 +- tol for a ratio, +-tol for a difference (+ when collapse is 'up')."""
    sign = 1.0 if direction == "up" else -1.0
    return (1.0 if scale == "ratio" else 0.0) + sign * tol


def window(generations: np.ndarray) -> np.ndarray:
    """Mask [G+1] of the last half of the generations (g >= ceil(G/2); at least generation G)."""
    g = np.asarray(generations)
    return g >= max(math.ceil(g.max() / 2), 1) if g.max() > 0 else g == g.max()


def statistic(values: np.ndarray, generations: np.ndarray, scale: str, level: float = 0.95):
    """(stat, lower, upper), each [...], from ``values`` [..., seed, generation] (criterion above).
    Non-finite seeds are dropped per point; fewer than 2 finite seeds give an infinite interval."""
    from scipy import stats

    v = np.asarray(values, np.float64)
    a = v[..., window(generations)].mean(-1)            # [..., S]
    b = v[..., list(np.asarray(generations)).index(0)] if 0 in list(generations) else v[..., 0]
    ok = np.isfinite(a) & np.isfinite(b)
    count = ok.sum(-1)
    a, b = np.where(ok, a, 0.0), np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_a, mean_b = a.sum(-1) / count, b.sum(-1) / count
        if scale == "ratio":
            stat = mean_a / mean_b
            z = (a - stat[..., None] * b) / mean_b[..., None]
        else:
            stat = mean_a - mean_b
            z = a - b
        z = np.where(ok, z - np.where(ok, z, 0).sum(-1, keepdims=True) / count[..., None], 0.0)
        se = np.sqrt((z ** 2).sum(-1) / (count - 1) / count)
        half = stats.t.ppf(0.5 + level / 2, np.maximum(count - 1, 1)) * se
    half = np.where(count >= 2, half, np.inf)
    return stat, stat - half, stat + half


def classify(ds: xr.Dataset, metric: str, tol: float = 0.1, level: float = 0.95,
             direction: str | None = None, scale: str | None = None) -> xr.DataArray:
    """Label every sweep point (all dims but seed, generation) of ``ds`` ``collapsing`` or ``stable``
    by ``metric`` (criterion in the module docstring). Returns a str DataArray over the sweep dims with
    coordinates ``statistic``, ``lower``, ``upper`` (same dims) and attrs metric, direction, scale,
    threshold, tol, level."""
    if metric not in ds.data_vars:
        raise ConfigError("metric", f"unknown metric {metric!r}; these results have: {', '.join(map(str, ds.data_vars))}")
    if not 0 < level < 1:
        raise ConfigError("level", f"must be in (0, 1), got {level}")
    if not (np.isfinite(tol) and tol >= 0):
        raise ConfigError("tol", f"must be a finite number >= 0, got {tol}")
    direction, scale = metric_direction(metric, direction, scale)
    da = ds[metric]
    dims = [d for d in da.dims if d not in ("seed", "generation")]
    da = da.transpose(*dims, "seed", "generation")
    stat, lower, upper = statistic(da.values, da["generation"].values, scale, level)
    threshold = threshold_of(direction, scale, tol)
    bad = upper < threshold if direction == "down" else lower > threshold
    coords = {d: da[d] for d in dims}
    labels = xr.DataArray(np.where(bad, LABELS[1], LABELS[0]), coords=coords, dims=dims, name="phase")
    for name, arr in (("statistic", stat), ("lower", lower), ("upper", upper)):
        labels.coords[name] = (dims, np.asarray(arr))
    labels.attrs.update(metric=metric, direction=direction, scale=scale, threshold=threshold, tol=tol,
                        level=level, criterion=f"{'last-half mean / generation 0' if scale == 'ratio' else 'last-half mean - generation 0'}"
                        f" {'<' if direction == 'down' else '>'} {threshold:g} over the whole {level:.0%} seed interval")
    return labels


# ----------------------------------------------------------------------------- drawing

def _edges(positions) -> np.ndarray:
    """Cell edges [n+1] around sorted-or-not cell centres [n] (midpoints; half a gap outside)."""
    p = np.asarray(positions, np.float64)
    if p.size == 1:
        return np.array([p[0] - 0.5, p[0] + 0.5])
    mid = (p[1:] + p[:-1]) / 2
    return np.concatenate([[p[0] - (mid[0] - p[0])], mid, [p[-1] + (p[-1] - mid[-1])]])


def _labels_for(ds, metric, keep, tol, level):
    """Classification reduced to the dims in ``keep`` (others at their first value, like plots.py),
    or None when ``metric`` has no known direction or ``ds`` has too few seeds."""
    if metric not in DIRECTIONS and metric not in ds.data_vars:
        return None
    try:
        metric_direction(metric)
    except ConfigError:
        return None
    labels = classify(ds, metric, tol=tol, level=level)
    fixed = {d: labels[d].values[0] for d in labels.dims if d not in keep}
    return labels.isel({d: 0 for d in fixed}) if fixed else labels


def draw_boundary(ax, ds: xr.Dataset, metric: str, axis: str | None = None, x: str | None = None,
                  y: str | None = None, positions=None, tol: float = 0.1, level: float = 0.95,
                  edges=None):
    """Mark where the classification of ``metric`` flips on a figure of ``ds``.

    One swept knob (``axis``, drawn along the y axis of a phase diagram): a horizontal dashed line
    between adjacent sweep values whose labels differ, annotated "stable ↑ / collapsing ↓" (or the
    reverse). ``positions`` [n]: the y coordinates of the sweep values (default: the values
    themselves, i.e. true spacing); ``edges`` [n+1]: the drawn cell edges in increasing order (the line then
    sits on the edge between the two rows, right on log or symmetric-log axes too; default: the
    midpoint of the two values). Two knobs (``x``, ``y``, a heatmap): the outline of the collapsing
    cells; ``positions`` = (x positions [nx], y positions [ny]). Returns the labels drawn (or None:
    metric without a known direction, or nothing to draw)."""
    keep = [axis] if axis else [x, y]
    if any(k is None or k not in ds.dims for k in keep):
        return None
    labels = _labels_for(ds, metric, keep, tol, level)
    if labels is None:
        return None
    bad = labels.values == LABELS[1]
    if axis is not None:
        pos = np.asarray(labels[axis].values if positions is None else positions, np.float64)
        order = np.argsort(pos)
        pos, bad = pos[order], bad[order]
        for i in np.flatnonzero(bad[1:] != bad[:-1]):
            at = (pos[i] + pos[i + 1]) / 2 if edges is None else float(np.asarray(edges)[i + 1])
            ax.axhline(at, color="cyan", lw=1.4, ls="--", label="_phase_boundary")
            text = "collapsing ↑ / stable ↓" if bad[i + 1] else "stable ↑ / collapsing ↓"
            text += f"  (last half vs generation 0, tol {tol:g})"
            ax.annotate(text, xy=(0.99, at), xycoords=("axes fraction", "data"), ha="right", va="center",
                        fontsize=7, color="cyan", backgroundcolor=(0, 0, 0, 0.5))
        return labels
    bad = labels.transpose(y, x).values == LABELS[1]          # [ny, nx] like the heatmap
    px, py = (labels[x].values, labels[y].values) if positions is None else positions
    ex, ey = _edges(px), _edges(py)
    segments = []
    padded = np.pad(bad, 1, constant_values=False)
    for i in range(bad.shape[0] + 1):          # horizontal edges between rows i-1 and i
        for j in range(bad.shape[1]):
            if padded[i, j + 1] != padded[i + 1, j + 1]:
                segments.append(([ex[j], ex[j + 1]], [ey[i], ey[i]]))
    for i in range(bad.shape[0]):              # vertical edges between columns j-1 and j
        for j in range(bad.shape[1] + 1):
            if padded[i + 1, j] != padded[i + 1, j + 1]:
                segments.append(([ex[j], ex[j]], [ey[i], ey[i + 1]]))
    for xs, ys in segments:
        ax.plot(xs, ys, color="red", lw=2.0, label="_phase_boundary")
    if segments:
        ax.text(0.01, 1.0, "red outline: collapsing", transform=ax.transAxes, ha="left", va="bottom",
                fontsize=7, color="red")
    return labels


# ----------------------------------------------------------------------------- critical value

@dataclass
class Boundary:
    """Result of :func:`boundary`. ``value``: midpoint of ``bracket``, the adjacent evaluated knob
    values between which the statistic crosses the threshold; ``interval``: the evaluated values
    around the knob range where the seed interval contains the threshold (undecided), i.e. the flip
    points of the lower and upper confidence limits; ``rounds``: [(lo, hi)] the range each round
    evaluated; ``evaluations``: knob values simulated (each with every seed); ``table``: every
    evaluated (value, statistic, lower, upper), sorted."""
    knob: str
    metric: str
    value: float
    bracket: tuple[float, float]
    interval: tuple[float, float]
    rounds: list = field(default_factory=list)
    evaluations: int = 0
    seeds: int = 0
    criterion: str = ""
    collapsing_side: str = ""
    table: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)), repr=False)
    level: float = 0.95

    def __str__(self):
        lines = [f"critical {self.knob} = {self.value:.6g}  bracket [{self.bracket[0]:.6g}, {self.bracket[1]:.6g}]"
                 f"  {self.level:.0%} seed interval [{self.interval[0]:.6g}, {self.interval[1]:.6g}]",
                 f"collapsing {self.collapsing_side} it; criterion: {self.metric} {self.criterion}",
                 f"{len(self.rounds)} round{'s' * (len(self.rounds) != 1)}, {self.evaluations} values x {self.seeds} seeds"]
        lines += [f"round {i + 1}: {n} values in [{a:.6g}, {b:.6g}]" for i, (a, b, n) in enumerate(self.rounds)]
        return "\n".join(lines)


def _crossing(values, bad):
    """(a, b): the evaluated values (sorted ``values``) bracketing the flips of ``bad``: the first
    flip's lower end and the last flip's upper end; None when it never flips."""
    flips = np.flatnonzero(bad[1:] != bad[:-1])
    return None if flips.size == 0 else (float(values[flips[0]]), float(values[flips[-1] + 1]))


def boundary(cfg, knob: str, lo: float, hi: float, tol: float, metric: str | None = None,
             collapse_tol: float = 0.1, points: int = 16, max_rounds: int = 10, level: float = 0.95,
             direction: str | None = None, overrides=(), progress: bool = False) -> Boundary:
    """Find the value of ``knob`` (a dotted knob path, e.g. ``loop.real_fraction``) in [lo, hi] where
    the classification by ``metric`` (default: the config's first metric with a known direction) at
    ``collapse_tol`` flips, to within ``tol`` on the knob.

    Successive grid refinement: round 1 simulates ``points`` values spread over [lo, hi] in ONE
    :func:`scl.simulate` call (the knob swept, every seed, common random numbers across values);
    each later round spends its ``points`` values inside the brackets still wider than ``tol``: where
    the statistic crosses the threshold and where its lower and upper confidence limits do (the ends
    of the seed interval). Because seed s has the same keys at every knob value and every round, all
    rounds' evaluations pool into one table. Stops when every bracket is within ``tol`` or after
    ``max_rounds``. Other sweep axes of ``cfg`` are dropped (their base values are used)."""
    from scl.config import Config, load_config
    from scl.simulate import simulate

    if not isinstance(cfg, Config) or overrides:
        cfg = load_config(cfg, overrides)
    _check_knob(cfg, knob)
    lo, hi, tol = _number("lo", lo), _number("hi", hi), _number("tol", tol)
    if not lo < hi:
        raise ConfigError("hi", f"must be above lo ({lo:g}), got {hi:g}")
    if not tol > 0:
        raise ConfigError("tol", f"must be > 0 (the precision wanted on {knob}), got {tol:g}")
    for name, v in (("lo", lo), ("hi", hi)):
        try:
            cfg.set(knob, v)
        except ConfigError as e:
            raise ConfigError(name, f"{v:g} is not a valid {knob} ({e})") from None
    if not (isinstance(points, int) and 3 <= points <= 4096):
        raise ConfigError("points", f"must be an integer in [3, 4096], got {points!r}")
    if not (isinstance(max_rounds, int) and 1 <= max_rounds <= 100):
        raise ConfigError("max_rounds", f"must be an integer in [1, 100], got {max_rounds!r}")
    if not (np.isfinite(collapse_tol) and collapse_tol >= 0):
        raise ConfigError("collapse_tol", f"must be a finite number >= 0, got {collapse_tol}")
    if not 0 < level < 1:
        raise ConfigError("level", f"must be in (0, 1), got {level}")
    if cfg.seeds < 2:
        raise ConfigError("seeds", "scl.boundary needs at least 2 seeds (its interval is over seeds)")
    names = list(cfg.metrics.names)
    if metric is None:
        metric = next((m for m in names if m in DIRECTIONS), None)
        if metric is None:
            raise ConfigError("metric", f"none of metrics.names ({', '.join(names)}) has a known collapse "
                              "direction; choose one with --metric and direction")
    elif metric not in names:
        raise ConfigError("metric", f"{metric!r} is not measured by this config; metrics.names: {', '.join(names)}")
    direction, scale = metric_direction(metric, direction)
    threshold = threshold_of(direction, scale, collapse_tol)
    base = cfg.to_dict()
    base["sweep"] = {}
    dim = knob.rpartition(".")[2]
    table: dict[float, tuple[float, float, float]] = {}
    beyond = (lambda c: c < threshold) if direction == "down" else (lambda c: c > threshold)
    rounds, cross = [], [None, None, None]
    candidates = np.linspace(lo, hi, points)
    for _ in range(max_rounds):
        new = sorted({float(v) for v in candidates} - set(table))
        if not new:
            break
        rounds.append((min(new), max(new), len(new)))
        ds = simulate(Config.from_dict({**base, "sweep": {knob: new}}), progress=progress)
        da = ds[metric].transpose(dim, "seed", "generation")
        for v, row in zip(da[dim].values, zip(*statistic(da.values, da["generation"].values, scale, level))):
            table[float(v)] = tuple(float(x) for x in row)
        values = np.array(sorted(table))
        rows = np.array([table[v] for v in values])
        found = [_crossing(values, beyond(rows[:, k])) for k in range(3)]
        if found[0] is None and len(rounds) == 1:
            side = "collapsing" if beyond(rows[0, 0]) else "stable"
            raise ConfigError("lo", f"the classification by {metric} does not flip on [{lo:g}, {hi:g}]: "
                              f"{side} throughout (statistic {rows[0, 0]:.4g} at lo, {rows[-1, 0]:.4g} at hi, "
                              f"threshold {threshold:g}); widen [lo, hi]")
        cross = [f if f is not None else (c if k == 0 else None) for k, (f, c) in enumerate(zip(found, cross))]
        wide = [c for c in dict.fromkeys(cross) if c is not None and c[1] - c[0] > tol]
        if not wide:
            break
        share = [points // len(wide) + (k < points % len(wide)) for k in range(len(wide))]
        candidates = np.concatenate([np.linspace(a, b, m + 2)[1:-1] for (a, b), m in zip(wide, share)])
    values = np.array(sorted(table))
    rows = np.array([table[v] for v in values])
    (a, b), ends = cross[0], [e for c in cross if c is not None for e in c]
    undecided = np.flatnonzero((rows[:, 1] <= threshold) & (threshold <= rows[:, 2]))
    if undecided.size:      # the evaluated values just outside the undecided ones
        ends += [values[max(undecided[0] - 1, 0)], values[min(undecided[-1] + 1, len(values) - 1)]]
    side = "below" if beyond(rows[0, 0]) else "above"
    sign = "<" if direction == "down" else ">"
    what = "last-half mean / generation 0" if scale == "ratio" else "last-half mean - generation 0"
    return Boundary(knob, metric, (a + b) / 2, (a, b), (float(min(ends)), float(max(ends))), rounds, len(table),
                    cfg.seeds, f"{what} {sign} {threshold:g}", side, np.column_stack([values, rows]), level)


def _number(name, v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ConfigError(name, f"must be a number, got {v!r}") from None
    if not np.isfinite(v):
        raise ConfigError(name, f"must be finite, got {v}")
    return v


def _check_knob(cfg, knob):
    import dataclasses

    from scl.options import is_knob

    section, _, key = str(knob).rpartition(".")
    obj = cfg
    for part in section.split(".") if section else []:
        obj = getattr(obj, part, None) if dataclasses.is_dataclass(obj) else None
    if not section or obj is None or not dataclasses.is_dataclass(obj) or \
            key not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError("knob", f"unknown setting {knob!r} (a dotted path such as loop.real_fraction)")
    if not is_knob(type(obj), key):
        raise ConfigError("knob", f"{knob} is static (it changes the compiled program); scl.boundary refines "
                          "knobs only, which one compiled call sweeps")
