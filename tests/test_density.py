"""tv_density (scl.metrics.density) and the KDE's size-following bandwidth (bandwidth_rule: size)."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize, stats

import scl
from scl.data import make_source
from scl.errors import ConfigError
from scl.families import make_family
from scl.families.gaussian import GaussianState
from scl.families.kde import KDEState
from scl.metrics import MetricContext, make_metrics
from scl.simulate import run_variant

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _cfg(truth, model=None, loop=None, metrics=("tv_density",), seeds=8, **metric_opts):
    return scl.Config.from_dict({
        "name": "density", "seeds": seeds, "seed": 3, "truth": truth,
        "model": model or {"family": "gaussian"},
        "loop": {"generations": 1, "n": 10, "regime": "replace", **(loop or {})},
        "metrics": {"names": list(metrics), **metric_opts}, "run": {"progress": False}})


def _tv_fn(cfg):
    source = make_source(cfg.truth)
    family = make_family(cfg.model, source)
    fn = make_metrics(MetricContext(family, source, cfg.metrics, cfg))["tv_density"]
    return jax.jit(lambda state: fn(None, state, {}))


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0, 2.5])
def test_tv_of_shifted_gaussian_1d_is_closed_form(shift):
    """N(m + a s, s^2) vs N(m, s^2): TV = 2 Phi(|a| / 2) - 1 (default grid 256, box m +- 8 s)."""
    mean, sd = 0.7, 1.5
    tv = _tv_fn(_cfg({"kind": "gaussian", "dim": 1, "mean": [mean], "std": sd}))
    got = float(tv(GaussianState(jnp.array([mean + shift * sd]), jnp.array([[sd ** 2]]))))
    assert got == pytest.approx(2 * stats.norm.cdf(shift / 2) - 1, abs=2e-4)


def test_tv_of_shifted_gaussian_2d_is_closed_form():
    """Equal covariances, means a Mahalanobis distance D apart: TV = 2 Phi(D / 2) - 1."""
    cov = np.array([[1.0, 0.5], [0.5, 2.0]])
    tv = _tv_fn(_cfg({"kind": "gaussian", "dim": 2, "cov": cov.tolist()}, density_grid=128))
    delta = np.array([0.8, -0.6])
    dist = np.sqrt(delta @ np.linalg.solve(cov, delta))
    got = float(tv(GaussianState(jnp.asarray(delta, jnp.float32), jnp.asarray(cov, jnp.float32))))
    assert got == pytest.approx(2 * stats.norm.cdf(dist / 2) - 1, abs=5e-4)


@pytest.mark.parametrize("cov", [0.0, 1e-12])
def test_collapsed_gaussian_is_at_tv_one(cov):
    """A singular (cov 0) or spike-like model has no mass on the grid's cells: TV = 1."""
    tv = _tv_fn(_cfg({"kind": "gaussian", "dim": 1}))
    assert float(tv(GaussianState(jnp.array([0.0]), jnp.array([[cov]])))) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("grid, error", [(256, 3e-4), (1024, 2e-5)])
def test_quadrature_error_at_unequal_spreads(grid, error):
    """N(0.4, 0.6^2) vs N(0, 1): exact TV from the two crossings r1 < r2 of the densities,
    P(r1 < X < r2) - P(r1 < Z < r2); the midpoint rule's kinks give an O(step^2) error
    (measured 2.1e-4 at the default 256 points over 16 sd, 6e-6 at 1024)."""
    tv = _tv_fn(_cfg({"kind": "gaussian", "dim": 1}, density_grid=grid))
    p, q = stats.norm(0.4, 0.6), stats.norm(0, 1)
    gap = lambda x: p.logpdf(x) - q.logpdf(x)
    r1, r2 = optimize.brentq(gap, -3, 0.4), optimize.brentq(gap, 0.4, 5)
    exact = (p.cdf(r2) - p.cdf(r1)) - (q.cdf(r2) - q.cdf(r1))
    got = float(tv(GaussianState(jnp.array([0.4]), jnp.array([[0.36]]))))
    assert got == pytest.approx(exact, abs=error)


def test_kde_tv_matches_scipy_quadrature_of_the_same_kde():
    rows = np.random.default_rng(0).normal(0.0, 1.0, 12)
    h = 0.3
    tv = _tv_fn(_cfg({"kind": "gaussian", "dim": 1}, model={"family": "kde", "bandwidth": h}))
    got = float(tv(KDEState(jnp.asarray(np.r_[rows, [50.0] * 4][:, None], jnp.float32),
                            jnp.int32(12), jnp.float32(h))))          # 4 padding rows, absent
    kde = lambda x: np.mean(stats.norm.pdf(x, rows, h))
    ref = 0.5 * integrate.quad(lambda x: abs(kde(x) - stats.norm.pdf(x)), -10, 10, limit=500,
                               points=sorted(rows))[0]
    assert got == pytest.approx(ref, abs=2e-4)


def gaussian_tv_exact(m1, s1, m2, s2):
    """TV between N(m1, s1^2) and N(m2, s2^2) from the (at most two) crossings of the densities."""
    p, q = stats.norm(m1, s1), stats.norm(m2, s2)
    a = 0.5 / s2 ** 2 - 0.5 / s1 ** 2                      # log p - log q = a x^2 + b x + c
    b = m1 / s1 ** 2 - m2 / s2 ** 2
    c = 0.5 * m2 ** 2 / s2 ** 2 - 0.5 * m1 ** 2 / s1 ** 2 + np.log(s2 / s1)
    roots = np.sort(np.roots([a, b, c]).real) if abs(a) > 1e-12 else np.array([-c / b])
    edges = np.r_[-np.inf, roots, np.inf]
    return sum(max(p.cdf(hi) - p.cdf(lo), q.cdf(hi) - q.cdf(lo)) for lo, hi in zip(edges[:-1], edges[1:])) - 1


def test_replace_loop_tv_matches_an_independent_computation():
    """Every seed's tv_density at generation 1 (grid 1024) against the exact TV of its final Gaussian."""
    cfg = _cfg({"kind": "gaussian", "dim": 1}, seeds=6, density_grid=1024)
    metrics, state = run_variant(cfg)
    got = np.asarray(metrics["tv_density"])[-1]
    means, sds = np.asarray(state.model.mean)[:, 0], np.sqrt(np.asarray(state.model.cov)[:, 0, 0])
    np.testing.assert_allclose(got, [gaussian_tv_exact(m, s, 0.0, 1.0) for m, s in zip(means, sds)], atol=5e-5)


def test_toy_truth_box_holds_its_mass():
    """Eight Gaussians: the truth's density on the grid over its widened bounding box sums to 1."""
    from scl.metrics.density import midpoint_grid, truth_box
    source = make_source(_cfg({"kind": "eight_gaussians", "std": 0.2}).truth)
    points, volume = midpoint_grid(*truth_box(source), 128)
    assert float(jnp.sum(jnp.exp(source.log_prob(points))) * volume) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("truth, model, says", [
    ({"kind": "gaussian", "dim": 3}, {"family": "gaussian"}, "1-D or 2-D"),
    ({"kind": "gaussian", "dim": 2}, {"family": "diffusion"}, "density"),
    ({"kind": "moons"}, {"family": "kde"}, "known density"),
])
def test_tv_density_refusals_name_metrics_names(truth, model, says):
    cfg = _cfg(truth, model=model)
    source = make_source(cfg.truth)
    with pytest.raises(ConfigError) as e:
        make_metrics(MetricContext(make_family(cfg.model, source), source, cfg.metrics, cfg))
    assert e.value.field == "metrics.names" and says in str(e.value)


@pytest.mark.parametrize("grid", [4, 5000])
def test_density_grid_out_of_range_refused(grid):
    with pytest.raises(ConfigError) as e:
        _cfg({"kind": "gaussian", "dim": 1}, density_grid=grid)
    assert e.value.field == "metrics.density_grid"


# ---------------------------------------------------------------- KDE bandwidth_rule: size

def test_size_bandwidth_follows_the_training_rows():
    """h = bandwidth m^(-1/(d+4)) (d = 2) with m the rows of the final generation's training set:
    fixed_real keeps n = 10 real rows + synthetic_size = 15 synthetic ones; accumulate holds n (t + 1)."""
    for regime, loop, rows in [("fixed_real", {"synthetic_size": 15}, 25), ("accumulate", {}, 30)]:
        cfg = _cfg({"kind": "gaussian", "dim": 2}, model={"family": "kde", "bandwidth_rule": "size", "bandwidth": 0.7},
                   loop={"regime": regime, "generations": 2, **loop}, seeds=3, density_grid=8)
        model = run_variant(cfg)[1].model
        assert np.all(np.asarray(model.count) == rows), regime
        np.testing.assert_allclose(np.asarray(model.bandwidth), 0.7 * rows ** (-1 / 6), rtol=1e-6)


def test_fixed_real_synthetic_size_equals_lambda_n():
    """fixed_real with n = 10 and synthetic_size = 15 builds lambda = 1.5's training set (same
    buffer, same weights); exactly one of lam / real_fraction / synthetic_size."""
    from scl.mixing import make_mixer

    def loop(**kw):
        return _cfg({"kind": "gaussian", "dim": 2}, loop={"regime": "fixed_real", **kw}).loop

    real, syn = jnp.arange(20.0).reshape(10, 2), -jnp.arange(30.0).reshape(15, 2)
    out = []
    for mixer, lam in [(make_mixer(loop(lam=1.5), lam_max=1.5), 1.5), (make_mixer(loop(synthetic_size=15)), 0.0)]:
        state, _, _ = mixer.init(jax.random.PRNGKey(0), real)
        out.append(mixer.mix(jax.random.PRNGKey(1), state, None, syn, {"lam": jnp.float32(lam)}, 1)[1:])
        assert mixer.synthetic_rows == 15
    for a, b in zip(*out):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(out[1][1].sum()) == 25
    with pytest.raises(ConfigError) as e:
        _cfg({"kind": "gaussian", "dim": 1}, loop={"regime": "fixed_real", "lam": 1.0, "synthetic_size": 15})
    assert e.value.field == "loop.lam" and "synthetic_size" in str(e.value)


# ---------------------------------------------------------------- Fu et al.'s phase transition

def _rise_and_fall(tv, paired=False):
    """(peak index, rise z, fall z) of tv [lam, seed]: the peak's excess over the first and last
    sweep values, each in standard errors of the seed mean: unpaired, sqrt(se_a^2 + se_b^2), or
    ``paired``: the SE of the per-seed difference (seeds share their real rows across lambda)."""
    mean = tv.mean(1)
    peak = int(np.argmax(mean))
    se = lambda a: a.std(-1, ddof=1) / np.sqrt(tv.shape[1])
    if paired:
        z = lambda i: (mean[peak] - mean[i]) / se(tv[peak] - tv[i])
    else:
        z = lambda i: (mean[peak] - mean[i]) / np.hypot(se(tv[peak]), se(tv[i]))
    return peak, z(0), z(-1)


def test_phase_transition_tiny():
    """One generation, n = 10, lambda in {0, 2, 64}, a coarse grid: adding synthetic rows raises
    the TV distance, many more bring it down again, both beyond 4 SE of the per-seed difference
    (measured: 0.149, 0.167, 0.153; 11.4 and 8.9 paired SE, 5.6 and 4.3 unpaired)."""
    cfg = scl.Config.from_dict({
        "name": "tiny", "seeds": 1000, "seed": 0, "truth": {"kind": "gaussian", "dim": 1},
        "model": {"family": "kde", "bandwidth_rule": "size", "bandwidth": 1.06},
        "loop": {"generations": 1, "n": 10, "regime": "fixed_real", "lam": 0.0},
        "metrics": {"names": ["tv_density"], "density_grid": 64},
        "sweep": {"loop.lam": [0.0, 2.0, 64.0]}, "run": {"progress": False}})
    tv = scl.simulate(cfg)["tv_density"].isel(generation=-1).values
    peak, rise, fall = _rise_and_fall(tv, paired=True)
    assert peak == 1 and rise > 4 and fall > 4, (tv.mean(1), rise, fall)


@pytest.mark.slow   # 195 s on the (shared, loaded) 2-core machine
def test_phase_transition_config():
    """configs/phase_transition_kde.yaml: the rise, then the fall, beyond 4 SE (README's curve)."""
    tv = scl.simulate(CONFIGS / "phase_transition_kde.yaml", progress=False)["tv_density"].isel(generation=-1).values
    peak, rise, fall = _rise_and_fall(tv)
    assert 0 < peak < tv.shape[0] - 1 and rise > 4 and fall > 4, (tv.mean(1), rise, fall)
