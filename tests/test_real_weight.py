"""loop.real_weight: real rows share the weight w, synthetic rows 1 - w, whatever their counts;
the sufficient-statistics form agrees with the rows; w = #real / #rows is the default."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl import moments
from scl.data import make_source
from scl.errors import ConfigError
from scl.families import make_family
from scl.mixing import RegimeContext, make_regime
from scl.mixing.base import combine_sources
from scl.options import knob_values
from scl.simulate import run_variant

N, LAM = 10, 2.0


def cfg(regime="fixed_real", real_weight=0.3, seeds=4, draw="rows", family="gaussian", **loop):
    if regime == "fixed_real" and "real_fraction" not in loop:
        loop["lam"] = LAM
    if regime == "fresh":
        loop.setdefault("real_fraction", 0.4)
    return scl.Config.from_dict({
        "name": "rw", "seeds": seeds, "seed": 2, "truth": {"kind": "gaussian", "dim": 2},
        "model": {"family": family, **({"draw": draw} if family == "gaussian" else {})},
        "loop": {"generations": 2, "n": N, "regime": regime, "real_weight": real_weight, **loop},
        "metrics": {"names": ["mean_sqerr", "trace_ratio"]}, "run": {"chunk_size": 2, "progress": False}})


def one_mix(c, t=1):
    """(real [N, 2], synthetic [m, 2], x, w) of generation t's training set under config ``c``."""
    regime = make_regime(c.loop, RegimeContext(N, c.loop.synthetic_rows, c.loop.generations, LAM, make_source(c.truth)))
    kr, ks, kf, km = jax.random.split(jax.random.PRNGKey(7), 4)
    real = jax.random.normal(kr, (N, 2))
    syn = 3.0 + jax.random.normal(ks, (regime.rows.synthetic_rows, 2))
    state, x, w = regime.rows.init(km, real)
    fresh = jax.random.normal(kf, (regime.rows.fresh_real_rows, 2)) if regime.rows.fresh_real_rows else None
    knobs = {k: jnp.float32(v) for k, v in knob_values(c.loop).items()}
    _, x, w = regime.rows.mix(km, state, fresh, syn, knobs, t)
    return real if fresh is None else fresh, syn, np.asarray(x), np.asarray(w)


def test_fitted_mean_is_the_weighted_mean_of_the_sources():
    c = cfg(real_weight=0.3)
    real, syn, x, w = one_mix(c)
    k = int(round(LAM * N))
    family = make_family(c.model, None)
    state = family.fit(None, None, jnp.asarray(x), jnp.asarray(w), knob_values(c.model))
    want = 0.3 * np.mean(real, 0) + 0.7 * np.mean(syn[:k], 0)
    np.testing.assert_allclose(state.mean, want, rtol=1e-5, atol=1e-6)
    assert np.isclose(w.sum(), N + k, rtol=1e-6)           # the row count the family reads is unchanged
    # the statistics form: the same mean and covariance from the two sets' moments
    m = combine_sources(moments.of_rows(real, jnp.ones(N)), moments.of_rows(syn[:k], jnp.ones(k)),
                        {"real_weight": 0.3, "real_weight_set": 1.0})
    np.testing.assert_allclose(m.mean, state.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.scatter / m.count, state.cov, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("regime", ["fixed_real", "fresh", "accumulate", "accumulate_subsample", "accumulate_decay"])
def test_every_mixing_regime_gives_the_real_rows_their_share(regime):
    c = cfg(regime, real_weight=0.8, synthetic_size=N) if regime.startswith("acc") else cfg(regime, real_weight=0.8)
    real, syn, x, w = one_mix(c, t=1)
    is_real = np.isin(x[:, 0], np.asarray(real)[:, 0]) & (w > 0)
    assert is_real.sum() > 0 and (~is_real & (w > 0)).sum() > 0
    np.testing.assert_allclose(w[is_real].sum() / w.sum(), 0.8, rtol=1e-5)


def test_real_share_by_count_is_the_default():
    share = 1.0 / (1.0 + LAM)
    _, weighted = run_variant(cfg(real_weight=share))
    _, plain = run_variant(cfg(real_weight=None))
    np.testing.assert_allclose(weighted.model.mean, plain.model.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weighted.model.cov, plain.model.cov, rtol=1e-5, atol=1e-6)


def test_statistics_form_agrees_with_rows_in_distribution():
    """fixed_real's two forms with real_weight, vmapped over 4000 keys: the training set's weighted
    mean and covariance drawn as statistics (scl.moments) and as rows agree within 4 SE."""
    c = cfg("fixed_real", real_weight=0.2)
    regime = make_regime(c.loop, RegimeContext(N, c.loop.synthetic_rows, 1, LAM, None))
    knobs = {k: jnp.float32(v) for k, v in knob_values(c.loop).items()}
    mean, root = jnp.array([1.0, -1.0]), jnp.array([[1.0, 0.0], [0.5, 0.8]])
    real = jax.random.normal(jax.random.PRNGKey(3), (N, 2))

    def by_rows(key):
        state, _, _ = regime.rows.init(key, real)
        syn = mean + jax.random.normal(key, (regime.rows.synthetic_rows, 2)) @ root.T
        _, x, w = regime.rows.mix(key, state, None, syn, knobs, 1)
        m = moments.of_rows(x, w)
        return m.mean, m.scatter / m.count

    def by_statistics(key):
        _, m = regime.statistics.mix(key, regime.statistics.init(real), (mean, root), knobs)
        return m.mean, m.scatter / m.count

    keys = jax.random.split(jax.random.PRNGKey(11), 4000)
    a, b = (jax.jit(jax.vmap(f))(keys) for f in (by_rows, by_statistics))
    for u, v in zip(a, b):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        se = np.sqrt(u.var(0) / len(u) + v.var(0) / len(v))
        assert np.all(np.abs(u.mean(0) - v.mean(0)) <= 4 * se + 1e-7), (u.mean(0), v.mean(0), se)
    # the real rows are fixed: the weighted mean is 0.2 mean(real) + 0.8 (mean of the synthetic rows)
    np.testing.assert_allclose(b[0].mean(0), 0.2 * real.mean(0) + 0.8 * mean, atol=4 * float(b[0].std(0).max()) / 60)


def test_refused_where_it_means_nothing():
    with pytest.raises(ConfigError, match="loop.real_weight.*replace"):
        cfg("replace")
    with pytest.raises(ConfigError, match="loop.real_weight.*kde"):
        cfg(family="kde")
    with pytest.raises(ConfigError, match="loop.real_weight"):
        cfg(real_weight=1.5)
