"""scl.theory: every registered closed form against simulation, within 4 standard errors at every
generation (many seeds, few generations, one compiled program per test)."""
import numpy as np
import pytest

import scl
from scl.theory import predict, predictions, predictor_name


def config(truth, model, loop, metrics, seeds=4000, sweep=None, **extra):
    d = {"name": "theory", "seed": 3, "seeds": seeds, "truth": truth, "model": model,
         "loop": loop, "metrics": {"names": list(metrics), "samples": 64}, "run": {"progress": False},
         "sweep": sweep or {}}
    d.update(extra)
    return scl.Config.from_dict(d)


def check_against_simulation(cfg, *names):
    """Every predicted metric, every sweep point and generation: |mean - theory| <= 4 SE; the
    points are predicted by exactly the predictors ``names``."""
    ds = scl.simulate(cfg)
    theory = predictions(cfg)
    assert theory is not None
    used = {predictor_name(p) for _, v in cfg.static_variants() for _, p in v.knob_grid()}
    assert used == set(names), used
    checked = 0
    for metric in theory.data_vars:
        sim = ds[metric].astype("float64")
        mean, se = sim.mean("seed"), sim.std("seed", ddof=1) / np.sqrt(sim.sizes["seed"])
        th = theory[metric]
        z = np.abs(mean - th) / np.maximum(se, 1e-12)
        bad = (np.abs(mean - th) > 4 * se + 1e-6 * np.abs(th))
        assert not bool(bad.any()), f"{metric}: z = {z.values}\nsim {mean.values}\ntheory {th.values}"
        checked += 1
    assert checked == len(cfg.metrics.names)
    return ds, theory


GAUSS = {"kind": "gaussian", "dim": 2, "cov": [[1.0, 0.3], [0.3, 0.5]]}


def test_gaussian_replace_d_dims_with_sampling_bias():
    cfg = config(GAUSS, {"family": "gaussian", "estimator": "unbiased", "covariance": "diag"},
                 {"generations": 5, "n": 8}, ["trace_ratio", "logdet_ratio", "mean_sqerr"],
                 sweep={"model.sampling_bias": [0.8, 1.0]})
    check_against_simulation(cfg, "gaussian_replace")


def test_gaussian_accumulate_general_batch_size():
    cfg = config(GAUSS, {"family": "gaussian"}, {"generations": 5, "n": 6, "regime": "accumulate",
                                                "synthetic_size": 3}, ["trace_ratio", "mean_sqerr"])
    check_against_simulation(cfg, "gaussian_accumulate")


def test_gaussian_fresh_data_loop_and_stationary_value():
    from scl.theory.gaussian_fresh import fresh_recursion, fresh_stationary

    cfg = config(GAUSS, {"family": "gaussian"}, {"generations": 5, "n": 8, "regime": "fresh", "real_fraction": 0.5},
                 ["trace_ratio", "mean_sqerr", "logdet_ratio"], sweep={"loop.real_fraction": [0.0, 0.25, 0.5, 1.0]},
                 correction={"kind": "ideal", "gamma": 0.5})
    _, theory = check_against_simulation(cfg, "gaussian_fresh")
    assert theory["logdet_ratio"].sel(real_fraction=1.0).notnull().all()     # all real: a fresh fit each time
    a, D = fresh_recursion(8, 2, 1 / 3, 400, "mle", 1.0)
    assert (a[-1], D[-1]) == pytest.approx(fresh_stationary(8, 2, 1 / 3, "mle"), rel=1e-9)
    assert fresh_recursion(8, 0, 0.0, 400, "mle", 1.0)[0][-1] < 1e-20    # no real rows: collapse


def test_gaussian_fixed_real_loop_with_ideal_correction():
    from scl.theory.gaussian_fixed_real import (_fixed_real_matrix, contraction_factor, fixed_real_recursion,
                                                fixed_real_stationary)

    cfg = config(GAUSS, {"family": "gaussian"}, {"generations": 5, "n": 6, "regime": "fixed_real", "lam": 1.0},
                 ["trace_ratio", "mean_sqerr"], sweep={"loop.lam": [0.5, 2.0], "correction.gamma": [0.0, 1.0]},
                 correction={"kind": "ideal", "gamma": 1.0})
    check_against_simulation(cfg, "gaussian_fixed_real")
    a, e = fixed_real_recursion(6, 12, 0.5, 500, "mle", 1.0)
    assert (a[-1], e[-1]) == pytest.approx(fixed_real_stationary(6, 12, 0.5, "mle"), rel=1e-9)
    # population limit: the mean error's contraction per generation is lambda/((1+lambda)(1+gamma))
    n = 10 ** 6
    A, _ = _fixed_real_matrix(n, 2 * n, 0.5, "mle", 1.0)
    assert A[2, 2] == pytest.approx(contraction_factor(2.0, 1.0), rel=1e-5)
    assert np.sqrt(A[1, 1]) == pytest.approx(contraction_factor(2.0, 1.0), rel=1e-5)


@pytest.mark.parametrize("regime", ["replace", pytest.param("accumulate", marks=pytest.mark.slow)])
def test_kde_fixed_bandwidth_variance(regime):
    cfg = config(GAUSS, {"family": "kde", "bandwidth": 0.5}, {"generations": 4, "n": 6, "regime": regime},
                 ["kde_variance"], seeds=3000)
    check_against_simulation(cfg, "kde_fixed_bandwidth")


@pytest.mark.parametrize("regime", ["replace", pytest.param("accumulate", marks=pytest.mark.slow)])
def test_linear_regression_fixed_design(regime):
    cfg = config({"kind": "linear_regression", "features": 2, "noise": 0.5},
                 {"family": "linear_regression", "label_noise": 1.0}, {"generations": 4, "n": 8, "regime": regime},
                 ["regression_error"], seeds=3000)
    check_against_simulation(cfg, "linear_regression")


CAT = {"kind": "categorical", "probs": [0.6, 0.3, 0.1]}


def test_wright_fisher_and_temperature_chain():
    """One program: temperature 1 is Wright-Fisher, 0.7 (and top_p) the exact count-vector chain."""
    cfg = config(CAT, {"family": "categorical"}, {"generations": 5, "n": 6},
                 ["simpson_diversity", "surviving_categories", "tv", "kl_model_data", "kl_data_model"],
                 sweep={"model.temperature": [1.0, 0.7], "model.top_p": [1.0, 0.8], "model.smoothing": [0.0, 0.3]})
    check_against_simulation(cfg, "wright_fisher", "categorical_temperature")
    out = predict(cfg.set("sweep", {}))
    p = np.array(CAT["probs"])
    assert out["surviving_categories"][0] == pytest.approx(np.sum(1 - (1 - p) ** 6))   # one step
    assert out["simpson_diversity"] == pytest.approx((1 - np.sum(p ** 2)) * (5 / 6) ** np.arange(1, 7))
    long = predict(cfg.set("sweep", {}).set("loop.generations", 400))
    assert long["surviving_categories"][-1] == pytest.approx(1.0, abs=1e-6)          # fixation
    assert predictions(cfg)["kl_data_model"].sel(smoothing=0.3).notnull().all()      # finite with smoothing


def test_categorical_luce_curated_law():
    cfg = config(CAT, {"family": "categorical"}, {"generations": 3, "n": 6}, ["tv", "simpson_diversity",
                 "expected_reward"], curation={"rule": "luce", "K": 3, "beta": 1.0,
                                               "reward": {"kind": "table", "values": [0.0, 1.0, 2.0]}})
    check_against_simulation(cfg, "categorical_luce")


def test_no_closed_form_gives_none_and_nan_points():
    cfg = config(GAUSS, {"family": "gaussian"}, {"generations": 3, "n": 6, "regime": "accumulate_subsample"},
                 ["trace_ratio"])
    assert predict(cfg) is None and predictions(cfg) is None
    assert predict(cfg.set("model", {"family": "kde", "bandwidth_rule": "scott"})) is None
    mixed = config(GAUSS, {"family": "gaussian"}, {"generations": 3, "n": 6}, ["trace_ratio", "w2"],
                   sweep={"loop.regime": ["replace", "accumulate_subsample"], "model.sampling_bias": [0.5, 1.0]})
    th = predictions(mixed)
    assert list(th.data_vars) == ["trace_ratio"] and th["trace_ratio"].dims == ("regime", "sampling_bias", "generation")
    assert np.all(np.isnan(th["trace_ratio"].sel(regime="accumulate_subsample")))
    assert th["trace_ratio"].sel(regime="replace", sampling_bias=0.5).values[1] == pytest.approx(0.5 * (5 / 6) ** 2)


# ------------------------------------------------------------------ overlays (no simulation: a made-up Dataset)

def fake_results(theory_on=True, offset=0.0, seeds=400):
    """A results-like Dataset whose metrics are the prediction + N(0, 0.1^2) noise (+ offset)."""
    import xarray as xr

    cfg = config(GAUSS, {"family": "gaussian"}, {"generations": 3, "n": 8}, ["trace_ratio", "w2"],
                 seeds=seeds, sweep={"model.sampling_bias": [0.5, 1.0]}).set("metrics.theory", theory_on)
    th = predictions(cfg.set("metrics.theory", True))
    rng = np.random.default_rng(0)
    values = th["trace_ratio"].values[:, None, :] + offset + 0.1 * rng.standard_normal((2, seeds, 4))
    dims = ("sampling_bias", "seed", "generation")
    coords = {"sampling_bias": [0.5, 1.0], "seed": np.arange(seeds), "generation": np.arange(4)}
    ds = xr.Dataset({"trace_ratio": (dims, values), "w2": (dims, np.abs(values))}, coords=coords)
    ds.attrs.update(config=cfg.to_yaml(), name="fake")
    return ds, th


def test_curves_draw_the_prediction_dashed_in_each_band_colour():
    from scl.plots import curves

    ds, th = fake_results()
    fig = curves(ds, theory=th)
    ax = fig.axes[0]                                               # trace_ratio
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(dashed) == 2
    for line, b, band in zip(dashed, [0.5, 1.0], solid):
        np.testing.assert_allclose(line.get_ydata(), th["trace_ratio"].sel(sampling_bias=b).values)
        assert line.get_color() == band.get_color()
    assert not [line for line in fig.axes[1].lines if line.get_linestyle() == "--"]   # w2: no closed form
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend.count("theory") == 1
    assert not [line for line in curves(ds).axes[0].lines if line.get_linestyle() == "--"]


def test_summary_prints_z_scores_and_flags_and_metrics_theory_false_removes_both():
    from scl.summary import summarize, theory_for

    ds, th = fake_results()
    text = summarize(ds, "trace_ratio")
    assert "theory at generation 3: trace_ratio predicted vs simulated" in text
    line = next(row for row in text.splitlines() if row.strip().startswith("sampling_bias=0.5") and " vs " in row)
    z = float(line.split("z =")[1].split()[0])
    sim = ds.trace_ratio.sel(sampling_bias=0.5, generation=3)
    expected = (float(sim.mean()) - float(th.trace_ratio.sel(sampling_bias=0.5, generation=3))) / \
        (float(sim.std(ddof=1)) / np.sqrt(sim.sizes["seed"]))
    assert z == pytest.approx(expected, abs=0.01) and abs(z) < 4 and "!!" not in text
    assert "!! |z| > 4" in summarize(fake_results(offset=0.1)[0], "trace_ratio")
    off, _ = fake_results(theory_on=False)
    assert theory_for(off) is None
    assert "theory at generation" not in summarize(off, "trace_ratio")


def test_predictions_equal_the_formulas_of_theory_md():
    """No simulation: scl.theory gives THEORY.md 1-3 exactly (simulated in test_theory_gaussian.py)."""
    from scipy.special import digamma

    from helpers import gaussian_cfg

    n, G = 10, 12
    r, t = (n - 1) / n, np.arange(1, G + 2)
    mle = predict(gaussian_cfg(n=n, generations=G))
    np.testing.assert_allclose(mle["trace_ratio"], r ** t)
    np.testing.assert_allclose(mle["logdet_ratio"], t * (digamma((n - 1) / 2) + np.log(2 / n)))
    np.testing.assert_allclose(mle["mean_sqerr"], 1 - r ** t)
    unb = predict(gaussian_cfg(n=n, generations=G, estimator="unbiased"))
    np.testing.assert_allclose(unb["trace_ratio"], 1.0)
    np.testing.assert_allclose(unb["mean_sqerr"], t / n)
    acc = predict(gaussian_cfg(n=n, generations=G, regime="accumulate"))
    product = np.cumprod([1 - 1 / (n * k ** 2) for k in t])
    np.testing.assert_allclose(acc["trace_ratio"], product)
    np.testing.assert_allclose(acc["mean_sqerr"], 1 - product)            # conservation
    fresh_without_real = predict(gaussian_cfg(n=n, generations=G, regime="fresh", real_fraction=0.0))
    assert all(np.allclose(fresh_without_real[k], mle[k]) for k in mle)
    known = predict(gaussian_cfg(n=n, generations=G, estimator="known_covariance"))
    np.testing.assert_allclose(known["mean_sqerr"], t / n)                 # the family's tested mean walk
