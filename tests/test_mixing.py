"""Mixing regimes build exactly the training sets their conventions promise."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl.mixing import make_mixer


def loop(**kw):
    base = {"generations": 4, "n": 10, "regime": "replace"}
    base.update(kw)
    return scl.Config.from_dict({"loop": base}).loop


def rows(value, count, d=2):
    return jnp.full((count, d), float(value))


KEY = jax.random.PRNGKey(0)


def test_replace_trains_on_synthetic_only():
    m = make_mixer(loop())
    st, x, w = m.init(KEY, rows(0, 10))
    st, x, w = m.mix(KEY, st, None, rows(7, m.synthetic_rows), {"real_fraction": 0.0, "lam": 0.0}, 1)
    assert m.fresh_real_rows == 0 and x.shape == (10, 2) and np.all(np.asarray(x) == 7) and float(w.sum()) == 10


@pytest.mark.parametrize("f", [0.0, 0.3, 0.55, 1.0])
def test_fresh_has_round_f_n_real_rows(f):
    m = make_mixer(loop(regime="fresh", real_fraction=f))
    st, _, _ = m.init(KEY, rows(0, 10))
    st, x, w = m.mix(KEY, st, rows(1, 10), rows(2, 10), {"real_fraction": jnp.float32(f), "lam": 0.0}, 1)
    x, w = np.asarray(x)[:, 0], np.asarray(w)
    assert w.sum() == 10
    assert w[x == 1].sum() == round(f * 10) and w[x == 2].sum() == 10 - round(f * 10)


@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_fixed_real_keeps_the_real_set_and_adds_lambda_n(lam):
    m = make_mixer(loop(regime="fixed_real", lam=lam), lam_max=2.0)
    assert m.synthetic_rows == 20
    real = jax.random.normal(KEY, (10, 2))
    st, x0, _ = m.init(KEY, real)
    for t in (1, 2):
        st, x, w = m.mix(KEY, st, None, rows(5, 20), {"real_fraction": 0.0, "lam": jnp.float32(lam)}, t)
        np.testing.assert_array_equal(np.asarray(x[:10]), np.asarray(real))
        assert float(w[:10].sum()) == 10 and float(w[10:].sum()) == round(lam * 10)


def test_accumulate_pool_grows_by_m_per_generation():
    m = make_mixer(loop(regime="accumulate", synthetic_size=3, generations=4))
    st, x, w = m.init(KEY, rows(0, 10))
    assert float(w.sum()) == 10
    for t in range(1, 5):
        st, x, w = m.mix(KEY, st, None, rows(t, 3), {}, t)
        assert x.shape == (10 + 4 * 3, 2) and float(w.sum()) == 10 + 3 * t
        vals = np.asarray(x[:, 0])[np.asarray(w) > 0]
        assert sorted(set(vals)) == list(range(t + 1))           # batch s from model s-1 kept


def test_accumulate_subsample_draws_n_distinct_written_rows():
    m = make_mixer(loop(regime="accumulate_subsample", synthetic_size=10, generations=3))
    ids = jnp.arange(10, dtype=jnp.float32)[:, None] * jnp.ones((1, 2))
    st, _, _ = m.init(KEY, ids)
    for t in range(1, 4):
        syn = (100 * t + jnp.arange(10, dtype=jnp.float32))[:, None] * jnp.ones((1, 2))
        st, x, w = m.mix(jax.random.PRNGKey(t), st, None, syn, {}, t)
        vals = np.asarray(x[:, 0])
        assert x.shape == (10, 2) and float(w.sum()) == 10 and len(set(vals)) == 10
        written = set(range(10)) | {100 * s + i for s in range(1, t + 1) for i in range(10)}
        assert set(vals) <= written


def test_accumulate_subsample_is_uniform_over_the_pool():
    """Each pool row is kept with probability n / pool size (checked over many keys)."""
    m = make_mixer(loop(regime="accumulate_subsample", synthetic_size=10, n=10, generations=1))
    st, _, _ = m.init(KEY, jnp.zeros((10, 1)))
    syn = jnp.ones((10, 1))
    keep = jax.vmap(lambda k: m.mix(k, st, None, syn, {}, 1)[1][:, 0].sum())(jax.random.split(KEY, 4000))
    share = np.asarray(keep) / 10         # share of synthetic rows: 1/2 in expectation
    assert abs(share.mean() - 0.5) < 4 * share.std() / np.sqrt(4000)


def floyd_by_comparison(key, count, k):
    """Reference: Floyd's algorithm with "already taken" answered by comparing with every pick
    (the same exact draws r ~ U{0..j})."""
    from scl.rng import uniform_below
    r_all = uniform_below(key, count - k + jnp.arange(k) + 1, (k,))

    def body(i, chosen):
        j = count - k + i
        r = r_all[i]
        return chosen.at[i].set(jnp.where(jnp.any(chosen == r), j, r))
    return jax.lax.fori_loop(0, k, body, jnp.full((k,), -1, jnp.int32))


@pytest.mark.parametrize("count, k, capacity", [(9, 4, 9), (9, 4, 16), (40, 6, 70)])
def test_distinct_indices_is_a_uniform_subset(count, k, capacity):
    """Floyd's algorithm: k distinct values, each of [0, count) included with probability k/count,
    and every pair with probability k(k-1)/(count(count-1)). The bitmap membership test ((40, 6, 70)
    spans three 32-bit words) picks exactly what the comparison test picks."""
    from scl.mixing.accumulate_subsample import distinct_indices

    R = 20_000
    keys = jax.random.split(KEY, R)
    draws = np.asarray(jax.vmap(lambda key: distinct_indices(key, count, k, capacity))(keys))
    plain = np.asarray(jax.vmap(lambda key: floyd_by_comparison(key, count, k))(keys))
    np.testing.assert_array_equal(draws, plain)
    assert all(len(set(row)) == k for row in draws[:500]) and draws.min() >= 0 and draws.max() < count
    member = np.zeros((R, count))
    np.put_along_axis(member, draws, 1.0, axis=1)
    for v in range(count):
        p = k / count
        assert abs(member[:, v].mean() - p) <= 4 * np.sqrt(p * (1 - p) / R)
    pair = member[:, 0] * member[:, count - 1]          # first and last values together
    p2 = k * (k - 1) / (count * (count - 1))
    assert abs(pair.mean() - p2) <= 4 * np.sqrt(p2 * (1 - p2) / R)


@pytest.mark.parametrize("regime, extra", [
    ("replace", {}), ("fresh", {"real_fraction": 0.3}), ("fixed_real", {"lam": 0.7}),
    ("accumulate", {"synthetic_size": 3}), ("accumulate_subsample", {"synthetic_size": 3})])
def test_training_rows_come_first_with_unit_weights(regime, extra):
    """The invariant families rely on (scl.families.weighted.pick_training_rows): weights are 1 on
    rows [0, sum(w)) and 0 after, at generation 0 and every later generation."""
    m = make_mixer(loop(regime=regime, **extra), lam_max=2.0)
    knobs = {"real_fraction": jnp.float32(extra.get("real_fraction", 0.0)), "lam": jnp.float32(extra.get("lam", 0.0))}
    st, x, w = m.init(KEY, rows(0, 10))
    checks = [w]
    for t in range(1, 5):
        fresh = rows(1, m.fresh_real_rows) if m.fresh_real_rows else None
        st, x, w = m.mix(jax.random.fold_in(KEY, t), st, fresh, rows(t, m.synthetic_rows), knobs, t)
        checks.append(w)
    for w in checks:
        w = np.asarray(w)
        count = int(w.sum())
        np.testing.assert_array_equal(w, (np.arange(w.size) < count).astype(np.float32))
