"""Phase classification, boundary drawing and critical-value search (scl.phase, ``scl refine``).

Known case: the Gaussian fresh-data loop (MLE, d dims, n rows of which k = round(f n) fresh real).
Given model t-1, the MLE of a set of k rows from N(mu0, S0) and n-k from N(mu, S) has
E S_t = (1/n)[(1 - 1/n)(k S0 + (n-k) S) + k(n-k)/n (mu - mu0)(mu - mu0)^T] and
E (mu_t - mu0)(mu_t - mu0)^T = (k S0 + (n-k) S)/n^2 + ((n-k)/n)^2 (mu - mu0)(mu - mu0)^T, so with
a = k/n, b = 1 - a, r = (n-1)/n, s_t = E tr S_t / tr S0, d_t = E|mu_t - mu0|^2 / tr S0:
    s_t = r (a + b s_{t-1}) + a b d_{t-1},   d_t = (a + b s_{t-1}) / n + b^2 d_{t-1},
    s_0 = r, d_0 = 1/n  (generation 0: n real rows).
The phase statistic of trace_ratio then has expectation R(k) = mean_{g in W} s_g / s_0 (W the last
half of the generations), so "collapsing when R < 1 - tol" flips at the exact f* = (k* - 1/2)/n,
k* the smallest k with R(k) >= 1 - tol.
"""
import math

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import scl
from scl.cli import main
from scl.phase import LABELS, classify, draw_boundary, window

N, G, SEEDS, COLLAPSE_TOL = 10, 10, 4000, 0.2
GRID = [float(v) for v in np.linspace(0.0, 1.0, 16)]       # = round 1 of boundary(lo=0, hi=1): one compiled program


def _cfg(**sweep):
    return scl.Config.from_dict({
        "name": "phase", "seed": 3, "seeds": SEEDS,
        "truth": {"kind": "gaussian", "dim": 1, "mean": [0.5], "cov": [[2.0]]},
        "model": {"family": "gaussian", "covariance": "full", "estimator": "mle"},
        "loop": {"generations": G, "n": N, "regime": "fresh", "real_fraction": 0.0},
        "metrics": {"names": ["trace_ratio", "logdet_ratio"]},
        "sweep": sweep, "run": {"progress": False}, "checkpoint": {"enabled": False}})


def expected_ratio(k: int, n: int = N, generations: int = G) -> float:
    """R(k): E of the trace_ratio phase statistic of the fresh loop (recursion in the docstring)."""
    a, r = k / n, (n - 1) / n
    b = 1 - a
    s, d = [r], [1 / n]
    for _ in range(generations):
        s, d = s + [r * (a + b * s[-1]) + a * b * d[-1]], d + [(a + b * s[-1]) / n + b * b * d[-1]]
    return float(np.mean(np.asarray(s)[window(np.arange(generations + 1))]) / r)


def critical_fraction(tol: float) -> float:
    k = next(k for k in range(N + 1) if expected_ratio(k) >= 1 - tol)
    return (k - 0.5) / N


@pytest.fixture(scope="module")
def grid_ds():
    return scl.simulate(_cfg(**{"loop.real_fraction": GRID}))


def test_statistic_matches_closed_form_and_labels_known_phases(grid_ds):
    labels = classify(grid_ds, "trace_ratio", tol=COLLAPSE_TOL)
    assert labels.dims == ("real_fraction",) and labels.attrs["threshold"] == pytest.approx(0.8)
    t = stats.t.ppf(0.975, SEEDS - 1)
    for f in GRID:
        point = labels.sel(real_fraction=f)
        se = float(point.upper - point.lower) / (2 * t)
        expected = expected_ratio(round(f * N))
        assert abs(float(point.statistic) - expected) <= 4 * se, (f, float(point.statistic), expected, se)
        if abs(expected - 0.8) > 4 * se:     # decided points: the label the closed form gives
            assert str(point.values) == LABELS[expected < 0.8], f
    assert str(labels.sel(real_fraction=0.0).values) == "collapsing"     # fully synthetic: collapses
    assert str(labels.sel(real_fraction=1.0).values) == "stable"         # all real: stable
    logdet = classify(grid_ds, "logdet_ratio", tol=0.1)                 # a difference (log scale)
    assert logdet.attrs["scale"] == "difference" and logdet.attrs["threshold"] == pytest.approx(-0.1)
    assert str(logdet.sel(real_fraction=0.0).values) == "collapsing"
    assert str(logdet.sel(real_fraction=1.0).values) == "stable"


def _groups(ds, size):
    """ds with its seeds split into groups of ``size``: a new sweep dim ``group`` (independent runs)."""
    groups = ds.sizes["seed"] // size
    ds = ds.isel(seed=slice(0, groups * size))
    index = xr.Coordinates.from_pandas_multiindex(
        __import__("pandas").MultiIndex.from_product([range(groups), range(size)], names=["group", "s"]), "seed")
    return ds.assign_coords(index).unstack("seed").rename(s="seed")


def test_noise_alone_is_collapsing_at_most_at_the_documented_rate(grid_ds):
    """f = 1 (all real): E R = 1 exactly. 500 independent runs of 8 seeds: at tol = 0 (the null at the
    threshold) the false-positive rate is alpha/2 = 2.5 %, within 4 binomial SE; at tol = 0.1, none."""
    runs = _groups(grid_ds.sel(real_fraction=[1.0]), 8)
    assert runs.sizes["group"] == 500 and runs.sizes["seed"] == 8
    at_null = classify(runs, "trace_ratio", tol=0.0) == "collapsing"
    rate, se = float(at_null.mean()), math.sqrt(0.025 * 0.975 / 500)
    assert abs(rate - 0.025) <= 4 * se, rate
    assert float((classify(runs, "trace_ratio", tol=0.1) == "collapsing").mean()) <= 0.025


def test_boundary_finds_the_closed_form_critical_fraction():
    exact = critical_fraction(COLLAPSE_TOL)
    assert exact == pytest.approx(0.15)
    b = scl.boundary(_cfg(), "loop.real_fraction", 0.0, 1.0, tol=0.01, metric="trace_ratio",
                     collapse_tol=COLLAPSE_TOL)
    assert b.bracket[1] - b.bracket[0] <= 0.01 and b.bracket[0] <= b.value <= b.bracket[1]
    assert b.interval[0] - 0.01 <= exact <= b.interval[1] + 0.01
    assert abs(b.value - exact) <= 0.01 + (b.interval[1] - b.interval[0])
    assert b.collapsing_side == "below" and len(b.rounds) >= 2
    assert b.evaluations == len(b.table) == sum(n for _, _, n in b.rounds)


def test_refine_cli_prints_the_critical_value(tmp_path, capsys):
    import yaml

    path = tmp_path / "fresh.yaml"
    path.write_text(yaml.safe_dump(_cfg().to_dict()))
    rc = main(["refine", str(path), "--knob", "loop.real_fraction", "--lo", "0", "--hi", "1", "--tol", "0.01",
               "--metric", "trace_ratio", "--collapse-tol", str(COLLAPSE_TOL), "--rounds", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    value = float(out.split("critical loop.real_fraction = ")[1].split()[0])
    bracket = [float(v) for v in out.split("bracket [")[1].split("]")[0].split(", ")]
    assert bracket[0] <= critical_fraction(COLLAPSE_TOL) <= bracket[1] and bracket[1] - bracket[0] <= 1 / 15 + 1e-6
    assert bracket[0] <= value <= bracket[1]        # one round (--rounds 1): the grid step of [0, 1] / 15
    assert "round 1: 16 values in [0, 1]" in out and "collapsing below it" in out and "1 round, 16 values" in out


@pytest.mark.parametrize("argv, field", [
    (["--knob", "loop.n"], "knob"), (["--knob", "loop.nothing"], "knob"), (["--knob", "real_fraction"], "knob"),
    (["--lo", "1", "--hi", "0.5"], "hi"), (["--hi", "1.5"], "hi"), (["--tol", "0"], "tol"), (["--tol", "nan"], "tol"),
    (["--metric", "w2"], "metric"), (["--metric", "bogus"], "metric"), (["--points", "2"], "points"),
    (["--collapse-tol", "-1"], "collapse_tol"), (["--rounds", "0"], "max_rounds"),
])
def test_refine_bad_input_is_one_line(tmp_path, capsys, monkeypatch, argv, field):
    import sys

    import yaml

    def refuse(*a, **k):
        raise AssertionError("bad input reached the simulation")

    monkeypatch.setattr(sys.modules["scl.simulate"], "simulate", refuse)
    path = tmp_path / "fresh.yaml"
    path.write_text(yaml.safe_dump(_cfg().to_dict()))
    base = {"--knob": "loop.real_fraction", "--lo": "0", "--hi": "1", "--tol": "0.01"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    rc = main(["refine", str(path)] + [x for kv in base.items() for x in kv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"scl: error: {field}: "), err


def test_refine_refuses_a_range_without_a_flip(monkeypatch):
    """Every value stable (a stub simulation: trace_ratio 1 throughout): one ConfigError naming lo."""
    import sys

    def stable(cfg, progress=None):
        (path, values), = cfg.sweep
        shape = (len(values), 4, G + 1)
        return xr.Dataset({"trace_ratio": (("real_fraction", "seed", "generation"),
                                           1 + 0.01 * np.random.default_rng(0).standard_normal(shape))},
                          coords={"real_fraction": list(values), "generation": np.arange(G + 1)})

    monkeypatch.setattr(sys.modules["scl.simulate"], "simulate", stable)
    with pytest.raises(scl.ConfigError, match="lo: the classification by trace_ratio does not flip on "
                                              r"\[0.5, 1\]: stable throughout"):
        scl.boundary(_cfg(), "loop.real_fraction", 0.5, 1.0, tol=0.01, metric="trace_ratio")


def test_phase_diagram_draws_the_flip(grid_ds):
    from scl.plots import phase_diagram

    fig = phase_diagram(grid_ds, metric="trace_ratio")
    ax = fig.axes[0]
    labels = classify(grid_ds, "trace_ratio", tol=0.1).values
    flips = np.flatnonzero(labels[1:] != labels[:-1])
    lines = [ln for ln in ax.get_lines() if ln.get_label() == "_phase_boundary"]
    midpoints = [(GRID[f] + GRID[f + 1]) / 2 for f in flips]           # rows at their true spacing
    assert flips.size >= 1 and sorted(ln.get_ydata()[0] for ln in lines) == pytest.approx(midpoints)
    assert any(t.get_text().startswith("stable ↑ / collapsing ↓") and "tol 0.1" in t.get_text() for t in ax.texts)


def test_heatmap_outlines_the_collapsing_cells():
    """Two knobs, a hand-made trace_ratio: seeds shrink (collapse) where a + b >= 3 on a 3 x 3 grid."""
    from scl.plots import final_heatmap

    rng = np.random.default_rng(0)
    a, b = np.arange(3.0), np.array([0.0, 1.0, 2.0])
    collapse = (a[:, None] + b[None, :]) >= 3                        # [a, b]: cells (1,2), (2,1), (2,2)
    g = np.arange(5)
    decay = np.where(collapse[..., None], 0.5, 1.0)[..., None] ** g    # [a, b, 1, G+1]
    values = decay * (1 + 0.01 * rng.standard_normal((3, 3, 16, 5)))
    ds = xr.Dataset({"trace_ratio": (("a", "b", "seed", "generation"), values)},
                    coords={"a": a, "b": b, "seed": np.arange(16), "generation": g})
    labels = classify(ds, "trace_ratio")
    assert ((labels == "collapsing").values == collapse).all()
    fig = final_heatmap(ds, "trace_ratio", x="a", y="b")
    segments = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "_phase_boundary"]
    assert len(segments) == 8            # the perimeter of the 3-cell L shape: 8 unit edges
    xs = np.concatenate([ln.get_xdata() for ln in segments])
    assert xs.min() == pytest.approx(0.5) and xs.max() == pytest.approx(2.5)


def test_draw_boundary_uses_true_spacing_by_default(grid_ds):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    labels = draw_boundary(ax, grid_ds, "trace_ratio", axis="real_fraction", tol=COLLAPSE_TOL)
    flip = np.flatnonzero(labels.values[1:] != labels.values[:-1])[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "_phase_boundary"]
    assert line.get_ydata()[0] == pytest.approx((GRID[flip] + GRID[flip + 1]) / 2)
    assert draw_boundary(ax, grid_ds.rename(trace_ratio="unknown_metric"), "unknown_metric",
                         axis="real_fraction") is None       # no known direction: nothing drawn
