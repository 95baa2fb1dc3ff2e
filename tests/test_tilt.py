"""curation.rule tilt: the exact tilted Gaussian (linear, quadratic reward; beta = 0: no curation),
importance resampling against the exact K-candidate law, and the replace-loop theory (scl.theory.tilt)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl.config import parse
from scl.curation import TiltCuration, exact_luce_law, make_curator
from scl.data import make_source
from scl.errors import ConfigError
from scl.families import make_family
from scl.families.gaussian import GaussianState
from scl.simulate import run_variant
from scl.stages import StageContext
from scl.theory.tilt import predict_tilt, quadratic_tilt_law, tilted_gaussian_law

MU = np.array([0.5, -1.0])
SIGMA = np.array([[1.0, 0.4], [0.4, 0.6]])
ROWS = 100_000


def gaussian_stage(reward, beta, method="auto", K=16, rows=ROWS):
    """(stage, draw(key) -> curated rows [rows, 2]) of a tilt curator on a Gaussian model N(MU, SIGMA)."""
    cfg = scl.Config.from_dict({"truth": {"kind": "gaussian", "dim": 2}, "model": {"family": "gaussian"}})
    family = make_family(cfg.model, make_source(cfg.truth))
    o = parse(TiltCuration, {"beta": beta, "method": method, "K": K, "reward": reward}, "curation")
    stage = make_curator(o, StageContext(None, cfg.truth, rows, 10, family))
    state = GaussianState(jnp.asarray(MU, jnp.float32), jnp.asarray(SIGMA, jnp.float32))
    model_knobs = {"sampling_bias": jnp.float32(1.0)}

    @jax.jit
    def draw(key, beta=beta):
        """Curated rows [rows, 2] at tilt ``beta`` (a knob: one compiled function for every beta)."""
        knobs = {"beta": jnp.asarray(beta, jnp.float32)}
        count = rows * stage.candidates_per_row
        k_sample, k_apply = jax.random.split(key)
        if stage.sample is not None:
            x = stage.sample(k_sample, state, count, model_knobs, knobs)
        else:
            x = family.sample(k_sample, state, count, model_knobs)
        return stage.apply(k_apply, (), x, jnp.ones((count,)), knobs)[1]
    return stage, draw


def assert_gaussian_moments(x, mean, cov):
    """Sample mean and covariance of x [N, d] equal (mean, cov) within 4 standard errors."""
    x = np.asarray(x, np.float64)
    N = x.shape[0]
    se_mean = np.sqrt(np.diag(cov) / N)
    assert np.all(np.abs(x.mean(0) - mean) <= 4 * se_mean), (x.mean(0), mean)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / N)    # Gaussian rows
    assert np.all(np.abs(np.cov(x.T) - cov) <= 4 * se_cov), (np.cov(x.T), cov)


def test_exact_linear_tilt_shifts_the_mean():
    a, beta = np.array([1.0, -2.0]), 0.7
    stage, draw = gaussian_stage({"kind": "linear", "weights": a.tolist(), "bias": 3.0}, beta)
    assert stage.sample is not None and stage.candidates_per_row == 1      # the exact path
    assert_gaussian_moments(draw(jax.random.PRNGKey(0)), MU + beta * SIGMA @ a, SIGMA)
    # beta 0: no curation, the tilted sampler draws the family's own rows (the same random numbers)
    fam = make_family(scl.Config.from_dict({"truth": {"kind": "gaussian", "dim": 2}}).model, None)
    state = GaussianState(jnp.asarray(MU, jnp.float32), jnp.asarray(SIGMA, jnp.float32))
    key = jax.random.PRNGKey(4)
    k_sample, _ = jax.random.split(key)
    np.testing.assert_allclose(draw(key, 0.0), fam.sample(k_sample, state, ROWS, {"sampling_bias": 1.0}),
                               rtol=1e-5, atol=1e-5)


def test_exact_quadratic_tilt_matches_the_precision_form():
    target, scale, beta = [2.0, 1.0], 0.5, 1.5
    stage, draw = gaussian_stage({"kind": "quadratic", "target": target, "scale": scale}, beta)
    mean, cov = quadratic_tilt_law(MU, SIGMA, scale, target, beta)
    # the closed form: precision Sigma^-1 + 2 beta s I
    np.testing.assert_allclose(np.linalg.inv(cov), np.linalg.inv(SIGMA) + 2 * beta * scale * np.eye(2))
    assert_gaussian_moments(draw(jax.random.PRNGKey(1)), mean, cov)
    assert_gaussian_moments(draw(jax.random.PRNGKey(2), 0.0), MU, SIGMA)     # beta 0: no curation


P = np.array([0.4, 0.3, 0.2, 0.1])
R = np.array([0.0, 0.5, 1.0, 2.0])


@pytest.mark.parametrize("K", [1, 4])
def test_importance_resampling_has_the_exact_K_candidate_law(K):
    """Categorical rows (no exact path): the kept category's law is Luce's with beta, exactly."""
    rows, beta = 200_000, 1.5
    o = parse(TiltCuration, {"beta": beta, "K": K, "reward": {"kind": "table", "values": R.tolist()}}, "curation")
    stage = make_curator(o, StageContext(None, None, rows, 10, None))
    assert stage.sample is None and stage.candidates_per_row == K
    kc, ks = jax.random.split(jax.random.PRNGKey(K))
    cand = jax.random.categorical(ks, jnp.log(jnp.asarray(P)), shape=(rows * K,))
    kept = jax.jit(stage.apply)(kc, (), cand, jnp.ones((rows * K,)), {"beta": jnp.float32(beta)})[1]
    freq = np.bincount(np.asarray(kept), minlength=4) / rows
    law = exact_luce_law(P, R, K, beta)
    if K == 1:
        np.testing.assert_allclose(law, P, rtol=1e-12)                  # K = 1: no change
    np.testing.assert_allclose(exact_luce_law(P, R, K, 0.0), P, rtol=1e-12)   # beta 0: no change
    assert np.all(np.abs(freq - law) <= 4 * np.sqrt(law * (1 - law) / rows)), (freq, law)


def test_resampling_law_tends_to_the_tilt():
    tilt = P * np.exp(1.5 * R) / np.sum(P * np.exp(1.5 * R))
    Ks = np.array([1, 4, 16, 48])
    gaps = np.array([np.abs(exact_luce_law(P, R, K, 1.5) - tilt).sum() for K in Ks])   # total variation x 2
    assert np.all(np.diff(gaps) < 0) and gaps[-1] < 0.05, gaps
    assert Ks[-1] * gaps[-1] <= Ks[-2] * gaps[-2], gaps      # the O(1/K) bias of self-normalised weights


def test_gaussian_resample_path_with_K_one_is_no_change():
    stage, draw = gaussian_stage({"kind": "linear", "weights": [1.0, -2.0]}, 0.7, method="resample", K=1)
    assert stage.sample is None
    assert_gaussian_moments(draw(jax.random.PRNGKey(3)), MU, SIGMA)


def loop_cfg(beta, seeds=4000, generations=3, estimator="mle", curation=True, reward=None, **cur):
    cfg = {"name": "tilt", "seeds": seeds, "seed": 5,
           "truth": {"kind": "gaussian", "dim": 2, "mean": MU.tolist(), "cov": SIGMA.tolist()},
           "model": {"family": "gaussian", "estimator": estimator, "sampling_bias": 0.9, "draw": "rows"},
           "loop": {"generations": generations, "n": 8, "regime": "replace"},
           "metrics": {"names": ["mean_sqerr", "trace_ratio"]},
           "run": {"chunk_size": generations, "progress": False}}
    if curation:
        cfg["curation"] = {"rule": "tilt", "beta": beta,
                           "reward": reward or {"kind": "linear", "weights": [1.0, -2.0], "bias": 0.3}, **cur}
        cfg["metrics"] = {"names": ["mean_sqerr", "trace_ratio", "expected_reward"], "samples": 32}
    return scl.Config.from_dict(cfg)


def test_theory_of_the_replace_loop_with_a_linear_tilt():
    cfg = loop_cfg(0.6)
    metrics, _ = run_variant(cfg)
    predicted = predict_tilt(cfg)
    for name in ("mean_sqerr", "expected_reward", "trace_ratio"):
        v = np.asarray(metrics[name], np.float64)
        se = v.std(-1) / np.sqrt(v.shape[-1])
        z = (v.mean(-1) - predicted[name]) / se
        assert np.all(np.abs(z) <= 4), (name, z)
    # the tilt moves the mean: E|mu_3 - mu*|^2 well above the untilted one
    assert predicted["mean_sqerr"][-1] > 3 * predict_tilt(loop_cfg(0.0))["mean_sqerr"][-1]


def test_predictor_covers_only_its_setting():
    assert predict_tilt(loop_cfg(0.6, seeds=1)) is not None
    assert predict_tilt(loop_cfg(0.6, seeds=1, method="resample")) is None
    assert predict_tilt(loop_cfg(0.6, seeds=1, reward={"kind": "quadratic", "target": [0.0, 0.0]})) is None
    assert predict_tilt(loop_cfg(0.6, seeds=1, curation=False)) is None
    assert predict_tilt(loop_cfg(0.6, seeds=1).set("model.covariance", "diag")) is None
    # the reference one-step law agrees with the sampler's closed form (no inverse of Sigma)
    from scl.curation import tilted_gaussian
    A, b = 2 * 0.5 * np.eye(2), np.array([0.3, -1.0])
    m, root = jax.jit(tilted_gaussian)(jnp.asarray(MU), jnp.linalg.cholesky(jnp.asarray(SIGMA)),
                                       jnp.asarray(A), jnp.asarray(b), 1.2)
    ref_m, ref_c = tilted_gaussian_law(MU, SIGMA, A, b, 1.2)
    np.testing.assert_allclose(m, ref_m, rtol=1e-5)
    np.testing.assert_allclose(root @ root.T, ref_c, rtol=1e-5)


def test_exact_method_refuses_what_it_cannot_tilt():
    with pytest.raises(ConfigError, match="curation.method"):
        loop_cfg(1.0, seeds=1, method="exact", reward={"kind": "distance", "target": [0.0, 0.0]})
    with pytest.raises(ConfigError, match="curation.method.*kde"):
        loop_cfg(1.0, seeds=1, method="exact").set("model", {"family": "kde"})
    with pytest.raises(ConfigError, match="curation.beta"):
        loop_cfg(-1.0, seeds=1)
