"""Settings that published results need (issue 14, point 3): a Gaussian fit with known
covariance (mean only), scipy's gaussian_kde bandwidth convention, scikit-learn's make_moons
layout. Each is checked against theory or the reference implementation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import sklearn.datasets

import scl
from scl.data import make_source
from scl.errors import ConfigError
from scl.families.kde import rule_bandwidth

from helpers import final_states, gaussian_cfg


def test_known_covariance_mean_is_a_gaussian_random_walk():
    """replace, mean-only fit: mu_g ~ N(mu_0, (g+1) Sigma_0 / n), covariance kept exactly."""
    n, G, R = 10, 6, 8000
    cfg = gaussian_cfg(dim=2, n=n, generations=G, seeds=R, estimator="known_covariance",
                       metrics=("mean_sqerr", "trace_ratio"))
    metrics, states = final_states(cfg)
    sq = np.asarray(metrics["mean_sqerr"], np.float64)          # [G+1, R]
    for g in (0, 3, G):
        expected = (g + 1) * 2.0 / n                               # tr(Sigma_0) = 2
        se = sq[g].std(ddof=1) / np.sqrt(R)
        assert abs(sq[g].mean() - expected) <= 4 * se, (g, sq[g].mean(), expected, se)
    np.testing.assert_allclose(np.asarray(metrics["trace_ratio"]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(states.model.cov), np.broadcast_to(np.eye(2), (R, 2, 2)), rtol=0, atol=0)
    # a mean squared error that kept growing like (g+1)/n shows the walk, not a fixed point
    assert sq[G].mean() > 5 * sq[0].mean()


def test_known_covariance_needs_a_gaussian_truth():
    with pytest.raises(ConfigError, match="model.estimator"):
        scl.Config.from_dict({"truth": {"kind": "moons"},
                              "model": {"family": "gaussian", "estimator": "known_covariance"}})


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_kde_ddof1_bandwidth_is_scipys(rule):
    """1-D: h with ddof 1 equals sqrt(scipy.stats.gaussian_kde(x, rule).covariance), weighted too."""
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=37)
    h = float(rule_bandwidth(jnp.asarray(x[:, None], jnp.float32), jnp.ones(37), rule, ddof=1))
    ref = np.sqrt(scipy.stats.gaussian_kde(x, bw_method=rule).covariance[0, 0])
    np.testing.assert_allclose(h, ref, rtol=1e-5)
    # the default (MLE variance) differs from scipy by sqrt((n-1)/n)
    h0 = float(rule_bandwidth(jnp.asarray(x[:, None], jnp.float32), jnp.ones(37), rule))
    np.testing.assert_allclose(h0, ref * np.sqrt(36 / 37), rtol=1e-5)
    # non-uniform weights: scipy's weighted covariance and effective size
    w = rng.uniform(0.2, 2.0, size=37)
    hw = float(rule_bandwidth(jnp.asarray(x[:, None], jnp.float32), jnp.asarray(w, jnp.float32), rule, ddof=1))
    refw = np.sqrt(scipy.stats.gaussian_kde(x, bw_method=rule, weights=w).covariance[0, 0])
    np.testing.assert_allclose(hw, refw, rtol=1e-5)


def test_kde_ddof_in_config():
    cfg = scl.Config.from_dict({"model": {"family": "kde", "bandwidth_rule": "scott", "ddof": 1}})
    assert cfg.model.ddof == 1
    with pytest.raises(ConfigError, match="model.ddof"):
        scl.Config.from_dict({"model": {"family": "kde", "bandwidth_rule": "scott", "ddof": 2}})


@pytest.mark.parametrize("n", [10, 11, 200])
def test_moons_sklearn_layout_matches_make_moons(n):
    cfg = scl.Config.from_dict({"truth": {"kind": "moons", "noise": 0.0, "layout": "sklearn"}})
    x = np.asarray(make_source(cfg.truth).sample(jax.random.PRNGKey(0), n))
    ref, labels = sklearn.datasets.make_moons(n, shuffle=False, noise=None)
    np.testing.assert_allclose(x, ref, atol=1e-6)
    assert np.array_equal(np.asarray(make_source(cfg.truth).assign(jnp.asarray(x))), labels)


def test_moons_sklearn_layout_noise_is_the_only_randomness():
    cfg = scl.Config.from_dict({"truth": {"kind": "moons", "noise": 0.1, "layout": "sklearn"}})
    src = make_source(cfg.truth)
    a, b = (np.asarray(src.sample(jax.random.PRNGKey(k), 4000)) for k in (1, 2))
    ref, _ = sklearn.datasets.make_moons(4000, shuffle=False, noise=None)
    for x in (a, b):
        resid = x - ref
        np.testing.assert_allclose(resid.mean(0), 0.0, atol=4 * 0.1 / np.sqrt(4000))
        np.testing.assert_allclose(resid.std(0), 0.1, rtol=0.05)
    assert not np.allclose(a, b)


# ----------------------------------------------------------------- top-k / top-p sampling

def _categorical_family(probs):
    from scl.families.categorical import CategoricalModel, make_categorical
    cfg = scl.Config.from_dict({"truth": {"kind": "categorical", "probs": list(probs)},
                                "model": {"family": "categorical"}})
    return make_categorical(CategoricalModel(), make_source(cfg.truth))


@pytest.mark.parametrize("probs,knobs,law", [
    ([0.1, 0.4, 0.2, 0.3], {"top_k": 3.0, "top_p": 1.0}, [0, 4 / 9, 2 / 9, 3 / 9]),
    ([0.1, 0.4, 0.2, 0.3], {"top_k": 3.0, "top_p": 0.7}, [0, 4 / 7, 0, 3 / 7]),    # 4/9 + 3/9 >= 0.7
    ([0.1, 0.4, 0.2, 0.3], {"top_k": 0.0, "top_p": 0.5}, [0, 4 / 7, 0, 3 / 7]),    # 0.4 < 0.5 <= 0.7
    ([0.1, 0.4, 0.2, 0.3], {"top_k": 0.0, "top_p": 0.4}, [0, 1, 0, 0]),
    ([0.25, 0.25, 0.25, 0.25], {"top_k": 2.0, "top_p": 1.0}, [0.5, 0.5, 0, 0]),  # ties: lower index
])
def test_top_k_top_p_sampling_law(probs, knobs, law):
    from scl.families.categorical import CategoricalState
    fam = _categorical_family(probs)
    state = CategoricalState(jnp.asarray(probs, jnp.float32))
    draws = np.asarray(fam.sample(jax.random.PRNGKey(1), state, 100_000, {"temperature": 1.0, **knobs}))
    freq = np.bincount(draws, minlength=4) / draws.size
    law = np.asarray(law)
    assert np.all(freq[law == 0] == 0)
    assert np.all(np.abs(freq - law) <= 4 * np.sqrt(law * (1 - law) / draws.size) + 1e-12), (freq, law)


def test_top_k_one_fixes_the_loop_at_generation_zeros_mode():
    """replace with top_k = 1: generation 1 is a point mass on generation 0's most frequent
    category (lowest index among ties) and stays there."""
    cfg = scl.Config.from_dict({
        "seeds": 64, "truth": {"kind": "categorical", "probs": [0.3, 0.3, 0.4]},
        "model": {"family": "categorical", "top_k": 1},
        "loop": {"regime": "replace", "n": 12, "generations": 3}, "metrics": {"names": []},
        "run": {"chunk_size": 3, "progress": False}})
    from scl.engine import build_program, flat_inputs
    program = build_program(cfg, chunk_size=3)
    keys, knobs = flat_inputs(cfg)
    s0, _ = program.init(keys, knobs)
    s3, _ = program.chunk(s0, keys, knobs, 1)
    p0, p3 = np.asarray(s0.model.probs), np.asarray(s3.model.probs)
    np.testing.assert_array_equal(p3, np.eye(3)[np.argmax(p0, 1)])
    assert len(set(np.argmax(p0, 1))) > 1        # seeds disagree: the cut follows each fit


def test_top_k_must_be_whole():
    with pytest.raises(ConfigError, match="model.top_k"):
        scl.Config.from_dict({"truth": {"kind": "categorical"}, "model": {"family": "categorical", "top_k": 1.5}})
    with pytest.raises(ConfigError, match="model.top_p"):
        scl.Config.from_dict({"truth": {"kind": "categorical"}, "model": {"family": "categorical", "top_p": 0}})
