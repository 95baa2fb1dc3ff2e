"""scl.moments: drawing a Gaussian training set's statistics instead of its rows is exact."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import scl
from helpers import final_states, gaussian_cfg
from scl.config import ConfigError
from scl import moments

SIGMA = np.array([[1.0, 0.4, 0.1], [0.4, 2.0, -0.3], [0.1, -0.3, 0.5]])
MU = np.array([0.5, -1.0, 2.0])


@pytest.mark.parametrize("dof", [1, 2, 3, 5, 98, 99])
def test_chi_square_follows_its_law(dof, check_4se):
    """chi2(dof): mean dof, variance 2 dof (4 SE), and the whole law (Kolmogorov-Smirnov)."""
    x = moments.chi_square(jax.random.PRNGKey(3), jnp.full((40_000,), dof, jnp.float32))
    chex.assert_shape(x, (40_000,))
    x = np.asarray(x, np.float64)
    check_4se(x, dof)
    check_4se((x - dof) ** 2, 2 * dof)
    assert stats.kstest(x, stats.chi2(dof).cdf).pvalue > 1e-3


def test_chi_square_under_vmap_matches_its_law(check_4se):
    """As the engine draws it: a flat [P * d] vector of degrees of freedom per configuration."""
    dof = jnp.array([99.0, 98.0, 29.0, 28.0])
    x = jax.vmap(moments.chi_square, (0, None))(jax.random.split(jax.random.PRNGKey(5), 20_000), dof)
    chex.assert_shape(x, (20_000, 4))
    x = np.asarray(x, np.float64)
    check_4se(x, np.asarray(dof))
    check_4se((x - np.asarray(dof)) ** 2, 2 * np.asarray(dof))


def test_chi_square_of_zero_degrees_is_zero():
    x = moments.chi_square(jax.random.PRNGKey(0), jnp.array([0.0, -1.0, 1.0]))
    assert x[0] == 0 and x[1] == 0 and x[2] > 0


def draws(count, reps=20_000):
    keys = jax.random.split(jax.random.PRNGKey(11), reps)
    root = jnp.asarray(np.linalg.cholesky(SIGMA), jnp.float32)
    m = jax.vmap(lambda k: moments.draw(k, jnp.asarray(MU, jnp.float32), root, count))(keys)
    return np.asarray(m.mean, np.float64), np.asarray(m.scatter, np.float64)


@pytest.mark.parametrize("count", [2, 3, 25])
def test_drawn_statistics_follow_normal_mean_and_wishart_scatter(count, check_4se):
    """mean ~ N(mu, Sigma/k); scatter ~ Wishart(k-1, Sigma): E S = (k-1) Sigma,
    Var S_ij = (k-1)(Sigma_ij^2 + Sigma_ii Sigma_jj), rank min(k-1, d)."""
    mean, scatter = draws(count)
    check_4se(mean, MU)
    check_4se((mean - MU)[:, :, None] * (mean - MU)[:, None, :], SIGMA / count)
    check_4se(scatter, (count - 1) * SIGMA)
    var = (count - 1) * (SIGMA ** 2 + np.outer(np.diag(SIGMA), np.diag(SIGMA)))
    check_4se((scatter - (count - 1) * SIGMA) ** 2, var)
    rank = np.linalg.matrix_rank(scatter[:50], tol=1e-4)
    assert np.all(rank == min(count - 1, 3)), rank


def test_one_row_has_no_scatter_and_no_rows_have_no_count():
    _, scatter = draws(1, reps=10)
    assert np.all(scatter == 0)
    m = moments.draw(jax.random.PRNGKey(0), jnp.zeros(2), jnp.eye(2), 0)
    assert float(m.count) == 0 and np.all(np.asarray(m.scatter) == 0)


def test_combine_equals_the_statistics_of_the_union():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3)), rng.normal(2.0, 3.0, size=(5, 3))
    of = lambda x: moments.of_rows(jnp.asarray(x, jnp.float32), jnp.ones(len(x), jnp.float32))
    both = moments.combine(of(a), of(b))
    ref = of(np.concatenate([a, b]))
    for got, want in zip(both, ref):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    alone = moments.combine(of(a), moments.Moments(jnp.float32(0), jnp.zeros(3), jnp.zeros((3, 3))))
    for got, want in zip(alone, of(a)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("draw", ["statistics", "rows"])
def test_fresh_regime_follows_its_exact_moment_recursion(draw, check_4se):
    """fresh, 1-D, truth N(0, 1), k = round(f n) real rows and n - k model rows, MLE fit:

        E s'^2 = [(k-1) + (n-k)/n + (n-k-1 + k/n) E s^2 + k(n-k)/n E mu^2] / n
        E mu'^2 = [k + (n-k) E s^2] / n^2 + ((n-k)/n)^2 E mu^2

    (scatter of the union = real scatter + model scatter + k(n-k)/n (m_real - m_model)^2)."""
    n, gens, seeds = 10, 6, 10_000
    cfg = gaussian_cfg(n=n, generations=gens, seeds=seeds, regime="fresh", real_fraction=0.3,
                       metrics=("trace_ratio", "mean_sqerr"), draw=draw)
    metrics, _ = final_states(cfg)
    k = 3
    s2, mu2 = (n - 1) / n, 1 / n                        # generation 0: n real rows
    for g in range(1, gens + 1):
        s2, mu2 = (((k - 1) + (n - k) / n + (n - k - 1 + k / n) * s2 + k * (n - k) / n * mu2) / n,
                   (k + (n - k) * s2) / n ** 2 + ((n - k) / n) ** 2 * mu2)
        check_4se(metrics["trace_ratio"][g], s2)
        check_4se(metrics["mean_sqerr"][g], mu2)


def test_auto_draws_statistics_only_where_exact():
    from scl.data import make_source
    from scl.engine import uses_statistics
    from scl.families import make_family
    from scl.mixing import RegimeContext, make_regime

    def uses(**over):
        cfg = scl.Config.from_dict({"loop": {"regime": "replace", "n": 20, **over.pop("loop", {})}, **over})
        source = make_source(cfg.truth)
        regime = make_regime(cfg.loop, RegimeContext(20, 20, cfg.loop.generations, 1.0, source))
        return uses_statistics(cfg, make_family(cfg.model, source), regime)

    assert uses()
    assert uses(loop={"regime": "fixed_real", "lam": 1.0})
    assert uses(loop={"regime": "fresh", "real_fraction": 0.5})
    assert not uses(loop={"regime": "fresh", "real_fraction": 0.5}, truth={"kind": "moons"})
    assert uses(truth={"kind": "moons"})                      # replace never draws truth rows
    assert not uses(loop={"regime": "accumulate"})
    assert not uses(curation={"rule": "luce", "K": 2, "reward": {"kind": "linear", "weights": [1, 0]}})
    assert not uses(model={"family": "gaussian", "draw": "rows"})


@pytest.mark.parametrize("over, field", [
    ({"loop": {"regime": "accumulate", "n": 20}}, "loop.regime"),
    ({"loop": {"regime": "fresh", "real_fraction": 0.5, "n": 20}, "truth": {"kind": "moons"}}, "truth.kind"),
    ({"loop": {"n": 20}, "correction": {"kind": "ideal"}}, "correction"),
])
def test_explicit_statistics_where_not_exact_is_refused_by_name(over, field):
    with pytest.raises(ConfigError) as err:
        scl.Config.from_dict({"model": {"family": "gaussian", "draw": "statistics"}, **over})
    assert err.value.field == "model.draw" and field in str(err.value)
