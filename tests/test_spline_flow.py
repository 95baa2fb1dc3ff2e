"""Rational-quadratic spline coupling flow (``model: {family: flow, coupling: spline}``)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl.config import Config, ConfigError
from scl.data import make_source
from scl.families.flow import SplineFlow, rational_quadratic_spline
from scl.metrics.samples import sliced_w2

K, BOUND = 6, 3.0
spline = jax.jit(rational_quadratic_spline, static_argnums=(2, 3))


def _random_raw(seed, n, scale=0.5):
    """Random spline parameters [n, 3K - 1]: log-slopes over about [-3.5, 2.5]."""
    return (scale * np.random.default_rng(seed).standard_normal((n, 3 * K - 1))).astype(np.float32)


def _random_flow(seed, dim=2, layers=4, out_scale=0.3):
    """A SplineFlow (width 16, depth 2) with random parameters everywhere: kernels N(0, 1/fan_in)
    (the output layers, zero at init, times ``out_scale``), biases N(0, 0.1^2). Drawn on the host
    (no compile); ``out_scale`` 0.3 keeps log|det| within about [-4, 3] for |z| up to ~8, where
    float32 inverts to ~1e-5 (a much stronger contraction would lose digits in inverse(forward))."""
    net = SplineFlow(dim, layers, 16, 2, K, BOUND)
    shapes = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, dim)),
                                             method=SplineFlow.log_prob))
    rng = np.random.default_rng(seed)

    def leaf(path, s):
        name = jax.tree_util.keystr(path)
        if "kernel" in name:
            gain = out_scale if "Dense_2" in name else 1.0
            return jnp.asarray(gain * rng.standard_normal(s.shape) / np.sqrt(s.shape[0]), jnp.float32)
        return jnp.asarray(0.1 * rng.standard_normal(s.shape), jnp.float32)

    return net, jax.tree_util.tree_map_with_path(leaf, shapes)


def test_spline_identity_at_zero_inverse_and_continuity():
    x = np.linspace(-5.0, 5.0, 2001, dtype=np.float32)   # inside and outside [-B, B], +-B included
    y0, ld0 = spline(x, np.zeros((2001, 3 * K - 1), np.float32), BOUND, False)
    np.testing.assert_allclose(np.asarray(y0), x, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ld0), 0.0, atol=1e-6)

    raw = _random_raw(0, 2001)
    x = np.random.default_rng(1).uniform(-5.0, 5.0, 2001).astype(np.float32)
    y, ld = spline(x, raw, BOUND, False)
    ld = np.asarray(ld)
    assert ld.std() > 0.5 and ld.min() < -2 and ld.max() > 1.5     # far from the identity
    back, ld_inv = spline(y, raw, BOUND, True)
    np.testing.assert_allclose(np.asarray(back), x, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ld_inv), -ld, atol=1e-4)
    outside = np.abs(x) > BOUND
    assert outside.sum() > 100
    np.testing.assert_array_equal(np.asarray(y)[outside], x[outside])
    np.testing.assert_array_equal(ld[outside], 0.0)
    # one spline on a fine grid: increasing, continuous (no jumps at the knots or at +-B)
    grid = np.linspace(-5.0, 5.0, 2001, dtype=np.float32)
    g, _ = spline(grid, np.broadcast_to(raw[0], (2001, 3 * K - 1)), BOUND, False)
    steps = np.diff(np.asarray(g))
    assert (steps > 0).all() and steps.max() < 0.1


def test_flow_inverse_inverts_forward():
    net, params = _random_flow(2)
    forward = jax.jit(lambda z: net.apply(params, z, method=SplineFlow.forward))
    inverse = jax.jit(lambda u: net.apply(params, u, method=SplineFlow.inverse))
    z = (2.5 * np.random.default_rng(3).standard_normal((1024, 2))).astype(np.float32)
    assert (np.abs(z) > BOUND).any(axis=1).mean() > 0.1
    u, logdet = forward(z)
    assert float(np.std(np.asarray(logdet))) > 0.3
    np.testing.assert_allclose(np.asarray(inverse(u)), z, atol=1e-4)
    np.testing.assert_allclose(np.asarray(forward(inverse(z))[0]), z, atol=1e-4)


def test_log_det_matches_jacobian():
    raw = _random_raw(4, 64)
    x = np.linspace(-3.5, 3.5, 64, dtype=np.float32)
    slope_fn = jax.jit(jax.vmap(jax.grad(lambda a, r: rational_quadratic_spline(a, r, BOUND)[0])))
    _, ld = spline(x, raw, BOUND, False)
    np.testing.assert_allclose(np.asarray(ld), np.log(np.asarray(slope_fn(x, raw))), atol=1e-4)

    net, params = _random_flow(5, dim=3)
    z = (2.0 * np.random.default_rng(6).standard_normal((8, 3))).astype(np.float32)

    @jax.jit
    def logdet_and_jacobian(z):
        f = lambda v: net.apply(params, v[None], method=SplineFlow.forward)[0][0]
        return net.apply(params, z, method=SplineFlow.forward)[1], jax.vmap(jax.jacfwd(f))(z)

    logdet, jac = logdet_and_jacobian(z)
    jac = np.asarray(jac, np.float64)                                      # [8, 3, 3]
    assert np.abs(jac - np.eye(3)).max() > 0.1
    np.testing.assert_allclose(np.asarray(logdet), np.linalg.slogdet(jac)[1], atol=1e-4)


def test_random_spline_flow_density_integrates_to_one():
    net, params = _random_flow(7)
    g = np.linspace(-7.0, 7.0, 561)
    h = g[1] - g[0]
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2).astype(np.float32)
    logp = np.asarray(jax.jit(lambda z: net.apply(params, z, method=SplineFlow.log_prob))(grid))
    base = -0.5 * np.sum(grid ** 2, -1) - np.log(2 * np.pi)
    assert np.abs(logp - base).max() > 1.0                      # not the base Gaussian
    assert abs(np.exp(logp).sum() * h * h - 1.0) < 0.02


@pytest.mark.slow   # slow: 37 s; the spline layers are checked by the density and Jacobian tests, in-loop training by the affine flow
def test_spline_flow_trains_in_the_loop():
    n = 1024
    cfg = Config.from_dict(dict(
        seeds=1, truth={"kind": "moons"},
        model={"family": "flow", "coupling": "spline", "bins": 8, "layers": 4, "width": 32, "depth": 2,
               "batch_size": 128, "init_steps": 300, "steps": 100, "learning_rate": 3e-3},
        metrics={"names": ["sliced_w2", "train_loss"], "samples": 4 * n},
        loop={"n": n, "generations": 1, "regime": "fresh", "real_fraction": 1.0}, run={"progress": False}))
    ds = scl.simulate(cfg, progress=False)
    loss = ds["train_loss"].values[0]           # [generation]
    got = ds["sliced_w2"].values[0]
    # Loss of the identity flow (the init): NLL of N(0, I) on standardised data = d/2 (1 + log 2 pi).
    start = 1.0 + np.log(2 * np.pi)
    assert np.isfinite(loss).all() and (loss < start - 0.5).all(), loss
    # The identity flow (the init) samples N(mean, diag(var)) of its data: its sliced W2 to fresh
    # moons rows (same size, same projections as the metric) is about 0.19; the trained flow's ~0.06.
    source = make_source(cfg.truth)
    # (4n probe rows: with n, the estimate's own noise was as large as the margin)
    m = 4 * n
    truth = np.asarray(source.sample(jax.random.PRNGKey(0), 2 * m))
    rng = np.random.default_rng(0)
    gauss = truth[:m].mean(0) + truth[:m].std(0) * rng.standard_normal((m, 2))
    base = float(sliced_w2(jax.random.PRNGKey(1), jnp.asarray(gauss, jnp.float32),
                           jnp.asarray(truth[m:]), 64))
    assert got[0] < 0.5 * base and got.max() < 0.6 * base, (got, base)


@pytest.mark.parametrize("change,field", [
    ({"bins": 1}, "model.bins"),
    ({"bound": 0.0}, "model.bound"),
    ({"bound": -1.0}, "model.bound"),
    ({"coupling": "cubic"}, "model.coupling"),
])
def test_bad_spline_settings_name_the_field(change, field):
    with pytest.raises(ConfigError) as e:
        Config(truth={"kind": "moons"}, model={"family": "flow", "coupling": "spline", **change},
               metrics={"names": ["sliced_w2"]})
    assert e.value.field == field and str(e.value).startswith(field)
