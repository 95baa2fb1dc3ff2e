"""Truth samplers match their definitions; metrics match references and invariants."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import sqrtm

import scl
from scl.data import make_source
from scl.metrics.gaussian import gaussian_w2
from scl.metrics.samples import mmd2, sinkhorn, sliced_w2, sort_floats

KEY = jax.random.PRNGKey(0)


def source(kind, **kw):
    return make_source(scl.Config.from_dict({"truth": {"kind": kind, **kw}, "loop": {"n": 10}}).truth)


def test_gaussian_source_moments():
    s = source("gaussian", dim=2, mean=[1.0, -2.0], cov=[[2.0, 0.6], [0.6, 0.5]])
    x = np.asarray(s.sample(KEY, 200_000), np.float64)
    np.testing.assert_allclose(x.mean(0), [1, -2], atol=0.02)
    np.testing.assert_allclose(np.cov(x.T), [[2.0, 0.6], [0.6, 0.5]], atol=0.03)


def test_eight_gaussians_modes_equally_weighted_on_the_ring():
    s = source("eight_gaussians", radius=2.0, std=0.05)
    x = s.sample(KEY, 80_000)
    counts = np.bincount(np.asarray(s.assign(x)), minlength=8) / 80_000
    np.testing.assert_allclose(counts, 1 / 8, atol=0.006)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(x), axis=1).mean(), 2.0, atol=0.01)


def test_moons_circles_match_scikit_learn_statistics():
    from sklearn.datasets import make_circles, make_moons

    xm = np.asarray(source("moons", noise=0.1).sample(KEY, 100_000))
    ref = make_moons(100_000, noise=0.1, random_state=0)[0]
    np.testing.assert_allclose(xm.mean(0), ref.mean(0), atol=0.01)
    np.testing.assert_allclose(xm.std(0), ref.std(0), atol=0.01)
    xc = np.asarray(source("circles", factor=0.5, noise=0.05).sample(KEY, 100_000))
    refc = make_circles(100_000, factor=0.5, noise=0.05, random_state=0)[0]
    np.testing.assert_allclose(np.linalg.norm(xc, axis=1).mean(), np.linalg.norm(refc, axis=1).mean(), atol=0.01)


def test_checkerboard_is_uniform_on_dark_squares():
    s = source("checkerboard", scale=1.0)
    x = s.sample(KEY, 50_000)
    assert np.all(np.isfinite(np.asarray(s.log_prob(x))))
    cells = np.floor(np.asarray(x)).astype(int)
    assert np.all((cells[:, 0] + cells[:, 1]) % 2 == 0)
    assert len({tuple(c) for c in cells}) == 8


def test_swiss_roll_radius_range():
    x = np.asarray(source("swiss_roll", noise=0.0).sample(KEY, 10_000))
    r = np.linalg.norm(x, axis=1) * 5
    assert r.min() >= 1.5 * np.pi - 1e-3 and r.max() <= 4.5 * np.pi + 1e-3


@pytest.mark.parametrize("d", [1, 2, 3])      # d <= 2 use a closed form, d = 3 an eigendecomposition
def test_gaussian_w2_matches_scipy_reference(d):
    rng = np.random.default_rng(d)
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    c1, c2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    r2 = sqrtm(c2)
    ref = np.sqrt(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * sqrtm(r2 @ c1 @ r2)).real)
    got = gaussian_w2(*(jnp.asarray(v, jnp.float32) for v in (m1, c1, m2, c2)))
    assert float(got) == pytest.approx(ref, rel=1e-4)


def test_logdet_of_ill_conditioned_float32_covariances_matches_float64():
    """2x2 covariances of condition number 1e7..1e9 (float32 entries, det > 0 in exact arithmetic):
    log det within 1e-5 of float64 NumPy (on these 429, jnp.linalg.slogdet erred by up to 2.1 and
    had the wrong sign on 17; a float32 Cholesky gave NaN on 74)."""
    from scl.metrics.gaussian import logdet_psd

    rng = np.random.default_rng(0)
    th, scale, cond = rng.uniform(0, np.pi, 500), 10 ** rng.uniform(-2, 2, 500), 10 ** rng.uniform(7, 9, 500)
    rot = np.stack([np.stack([np.cos(th), -np.sin(th)], -1), np.stack([np.sin(th), np.cos(th)], -1)], -2)
    c = ((rot * np.stack([scale, scale / cond], -1)[:, None, :]) @ np.swapaxes(rot, 1, 2)).astype(np.float32)
    c = (c + np.swapaxes(c, 1, 2)) / 2
    sign, want = np.linalg.slogdet(c.astype(np.float64))
    c, want = c[sign > 0], want[sign > 0]
    assert len(c) > 400 and np.median(np.linalg.cond(c.astype(np.float64))) > 1e7
    got = np.asarray(jax.jit(jax.vmap(logdet_psd))(jnp.asarray(c)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # one fixed example: [[1, b], [b, 1]], b the float32 just below 1 - 2^-23 (condition ~8e6)
    b = np.nextafter(np.float32(1 - 2 ** -23), np.float32(0))
    one = np.array([[1, b], [b, 1]], np.float32)
    assert float(logdet_psd(jnp.asarray(one))) == pytest.approx(np.linalg.slogdet(one.astype(np.float64))[1], abs=1e-5)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_logdet_collapsed_is_minus_inf_and_not_psd_is_nan(d):
    from scl.metrics.gaussian import logdet_psd

    rng = np.random.default_rng(d)
    a = rng.normal(size=(d, d))
    spd = a @ a.T + 0.5 * np.eye(d)
    assert float(logdet_psd(jnp.asarray(spd, jnp.float32))) == pytest.approx(np.linalg.slogdet(spd)[1], abs=1e-4)
    collapsed = spd.copy()
    collapsed[0, :] = collapsed[:, 0] = 0.0          # the first variance collapsed to 0
    assert float(logdet_psd(jnp.asarray(collapsed, jnp.float32))) == -np.inf
    flipped = -spd                                     # negative definite (det > 0 when d is even)
    assert np.isnan(float(logdet_psd(jnp.asarray(flipped, jnp.float32))))
    if d >= 2:
        indefinite = np.eye(d)
        indefinite[0, 1] = indefinite[1, 0] = 2.0      # det < 0
        assert np.isnan(float(logdet_psd(jnp.asarray(indefinite, jnp.float32))))


def test_sort_floats_equals_numpy_sort():
    x = jax.random.normal(KEY, (7, 333)) * 1e3
    np.testing.assert_array_equal(np.asarray(sort_floats(x)), np.sort(np.asarray(x), axis=-1))


def test_sliced_w2_of_a_shift_is_the_mean_projected_shift():
    """For y = x + v, every 1-D projection is shifted by <u, v>, so SW2^2 = mean_u <u, v>^2."""
    x = jax.random.normal(KEY, (500, 2))
    v = jnp.array([3.0, 0.0])
    k = jax.random.PRNGKey(1)
    dirs = jax.random.normal(k, (4000, 2))
    dirs = dirs / jnp.linalg.norm(dirs, axis=-1, keepdims=True)
    expected = float(jnp.sqrt(jnp.mean((dirs @ v) ** 2)))       # -> 3 / sqrt(2)
    assert float(sliced_w2(k, x, x + v, 4000)) == pytest.approx(expected, rel=1e-4)
    assert float(sliced_w2(k, x, x, 16)) == 0.0


def test_mmd_is_unbiased_zero_for_equal_laws_and_positive_otherwise():
    keys = jax.random.split(KEY, 400)
    same = jax.vmap(lambda k: mmd2(*jax.random.normal(k, (2, 64, 2)), 1.0))(keys)
    same = np.asarray(same, np.float64)
    assert abs(same.mean()) < 4 * same.std() / np.sqrt(400)
    shifted = float(mmd2(jax.random.normal(KEY, (256, 2)), jax.random.normal(KEY, (256, 2)) + 1.0, 1.0))
    assert shifted > 0.1


def test_sinkhorn_divergence_is_zero_on_itself_and_near_w2_squared_for_a_shift():
    x = jax.random.normal(KEY, (200, 2))
    assert abs(float(sinkhorn(x, x, 0.01))) < 1e-4
    v = jnp.array([2.0, 0.0])
    # cost |x-y|^2 (ott's default sq. Euclidean): W2^2 of a pure translation is |v|^2 = 4
    assert float(sinkhorn(x, x + v, 0.01)) == pytest.approx(4.0, rel=0.05)
