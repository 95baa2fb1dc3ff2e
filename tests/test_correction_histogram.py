"""Known answers for the Gaussian toy of Gillman et al. (ICML 2024): the histogram corrector and the
decayed accumulation."""
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl.correction_histogram import histogram2d, histogram_mixture_correct
from scl.mixing import make_mixer
from scl.mixing.accumulate_decay import decay_kept_rows

N_ROWS = 25          # the paper's synthetic batch: int(0.5 * 50)
REPS = 2000          # 50k output rows per law


@pytest.fixture(scope="module")
def rows():
    return np.asarray(jax.random.normal(jax.random.PRNGKey(1), (N_ROWS, 2)), np.float32)


def _draw(rows, t, law, reps=REPS, seed=0, **kw):
    f = jax.jit(jax.vmap(lambda k: histogram_mixture_correct(k, rows, t, law=law, **kw)))
    return np.asarray(f(jax.random.split(jax.random.PRNGKey(seed), reps)), np.float64).reshape(-1, 2)


def _check_4se(samples, expected, what):
    samples = np.asarray(samples, np.float64)
    m = samples.mean(0)
    se = samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    assert np.all(np.abs(m - expected) <= 4 * se + 1e-12), f"{what}: {m} vs {expected} (4 SE {4 * se})"


def _check_shares(cell, p, what):
    n = cell.size
    freq = np.bincount(cell, minlength=p.size) / n
    se = np.sqrt(p * (1 - p) / n)
    bad = np.abs(freq - p) > 4 * se + 1e-9
    assert not bad.any(), f"{what}: cells {np.where(bad)[0]} freq {freq[bad]} vs {p[bad]}"


def _np_hist(rows):
    h, xe, ye = np.histogram2d(rows[:, 0], rows[:, 1], bins=10, density=True)
    c, _, _ = np.histogram2d(rows[:, 0], rows[:, 1], bins=10)
    return h, c, xe, ye


# --------------------------------------------------------------------------- histogram

def test_histogram_matches_numpy(rows):
    c, lo, width = histogram2d(jnp.asarray(rows))
    _, c_np, xe, ye = _np_hist(rows.astype(np.float64))
    np.testing.assert_array_equal(np.asarray(c), c_np)
    np.testing.assert_allclose(np.asarray(lo), [xe[0], ye[0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(width), [xe[1] - xe[0], ye[1] - ye[0]], rtol=1e-5)
    # fixed range: rows outside are dropped, as numpy's range=
    c2, _, _ = histogram2d(jnp.asarray(rows), low=-1.0, high=1.0)
    c2_np, _, _ = np.histogram2d(rows[:, 0], rows[:, 1], bins=10, range=[[-1, 1], [-1, 1]])
    np.testing.assert_array_equal(np.asarray(c2), c2_np)


# --------------------------------------------------------------------------- mixture law

def test_mixture_t1_is_standard_normal(rows):
    for law in ("mixture", "paper"):
        x = _draw(rows, 1.0, law)
        _check_4se(x, [0.0, 0.0], f"{law} mean")
        _check_4se(x * x, [1.0, 1.0], f"{law} second moments")
        _check_4se(x[:, :1] * x[:, 1:], [0.0], f"{law} cross moment")


def test_mixture_t0_reproduces_histogram(rows):
    x = _draw(rows, 0.0, "mixture")
    _, c, xe, ye = _np_hist(rows.astype(np.float64))
    assert x[:, 0].min() >= xe[0] - 1e-5 and x[:, 0].max() <= xe[-1] + 1e-5
    assert x[:, 1].min() >= ye[0] - 1e-5 and x[:, 1].max() <= ye[-1] + 1e-5
    fx, fy = (x[:, 0] - xe[0]) / (xe[1] - xe[0]), (x[:, 1] - ye[0]) / (ye[1] - ye[0])
    ix, iy = np.clip(np.floor(fx), 0, 9).astype(int), np.clip(np.floor(fy), 0, 9).astype(int)
    p = c.ravel() / c.sum()
    _check_shares(ix * 10 + iy, p, "bin shares t=0")
    # uniform inside the bins: within-bin position has mean 1/2, variance 1/12
    ux, uy = fx - ix, fy - iy
    _check_4se(np.stack([ux, uy], 1), [0.5, 0.5], "within-bin mean")
    _check_4se((np.stack([ux, uy], 1) - 0.5) ** 2, [1 / 12, 1 / 12], "within-bin variance")


def test_mixture_t_half_moments(rows):
    t = 0.5
    x = _draw(rows, t, "mixture")
    _, c, xe, ye = _np_hist(rows.astype(np.float64))
    p = c / c.sum()
    cx, cy = (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2
    dx, dy = xe[1] - xe[0], ye[1] - ye[0]
    mean_h = np.array([(p.sum(1) * cx).sum(), (p.sum(0) * cy).sum()])
    sq_h = np.array([(p.sum(1) * (cx ** 2 + dx ** 2 / 12)).sum(), (p.sum(0) * (cy ** 2 + dy ** 2 / 12)).sum()])
    xy_h = (p * np.outer(cx, cy)).sum()
    _check_4se(x, (1 - t) * mean_h, "mean")
    _check_4se(x * x, (1 - t) * sq_h + t, "second moments")
    _check_4se(x[:, :1] * x[:, 1:], [(1 - t) * xy_h], "cross moment")


# --------------------------------------------------------------------------- paper law

def _paper_cells(x, lo, width):
    """Cell index with the paper code's lookup int((x - x0) / dx); 100 = outside."""
    i = np.trunc((x - lo) / width).astype(int)
    ok = np.all((i >= 0) & (i < 10), 1)
    return np.where(ok, i[:, 0] * 10 + i[:, 1], 100)


def _paper_law_cell_probs(rows, t, q=80):
    """Quadrature of g ~ min((1-t) H~ + t phi, M phi) over the 100 effective cells + outside."""
    h, c, xe, ye = _np_hist(rows.astype(np.float64))
    lo, width = np.array([xe[0], ye[0]]), np.array([xe[1] - xe[0], ye[1] - ye[0]])
    phi0 = 1 / (2 * np.pi)
    M = ((1 - t) * h.max() + t * phi0) / phi0
    mass = np.zeros(101)
    for bx in range(10):
        for by in range(10):
            x0 = lo[0] + (bx - (bx == 0)) * width[0]
            y0 = lo[1] + (by - (by == 0)) * width[1]
            wx, wy = width[0] * (2 if bx == 0 else 1), width[1] * (2 if by == 0 else 1)
            gx = x0 + (np.arange(q) + 0.5) * wx / q
            gy = y0 + (np.arange(q) + 0.5) * wy / q
            X, Y = np.meshgrid(gx, gy, indexing="ij")
            ph = phi0 * np.exp(-0.5 * (X ** 2 + Y ** 2))
            g = np.minimum((1 - t) * h[bx, by] + t * ph, M * ph)
            mass[bx * 10 + by] = g.mean() * wx * wy
    a0, a1 = lo - width, lo + 10 * width          # the effective histogram support
    Phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))
    inside = (Phi(a1[0]) - Phi(a0[0])) * (Phi(a1[1]) - Phi(a0[1]))
    mass[100] = t * (1 - inside)                   # outside: g = t phi (M >= t)
    return mass / mass.sum(), lo, width, M


def _paper_sampler_numpy(rows, t, n, seed):
    """Vectorised port of PointwiseCorrection.rejection_sampling (same arithmetic)."""
    h, _, xe, ye = _np_hist(rows.astype(np.float64))
    rng = np.random.default_rng(seed)
    pdf = lambda x: np.exp(-0.5 * (x ** 2).sum(-1)) / (2 * np.pi)
    M = ((1 - t) * h.max() + t * pdf(np.zeros(2))) / pdf(np.zeros(2))
    out = []
    while sum(len(o) for o in out) < n:
        cand = rng.standard_normal((200_000, 2))
        u = rng.uniform(size=200_000)
        ix = ((cand[:, 0] - xe[0]) / (xe[1] - xe[0])).astype(int)
        iy = ((cand[:, 1] - ye[0]) / (ye[1] - ye[0])).astype(int)
        ok = ~((ix >= 10) | (iy >= 10) | (ix < 0) | (iy < 0))
        emp = np.where(ok, h[np.clip(ix, 0, 9), np.clip(iy, 0, 9)], 0.0)
        f = (1 - t) * emp + t * pdf(cand)
        out.append(cand[f / (M * pdf(cand)) > u])
    return np.concatenate(out)[:n]


@pytest.mark.parametrize("t", [pytest.param(0.0, marks=pytest.mark.slow), 0.5])
def test_paper_law_matches_quadrature_and_the_literal_sampler(rows, t):
    p, lo, width, _ = _paper_law_cell_probs(rows, t)
    x = _draw(rows, t, "paper")
    _check_shares(_paper_cells(x, lo, width), p, f"jax paper law t={t}")
    ref = _paper_sampler_numpy(rows, t, x.shape[0], seed=1)
    _check_shares(_paper_cells(ref, lo, width), p, f"numpy port of the paper sampler t={t}")


def test_paper_law_differs_from_mixture_at_t0(rows):
    """The capped acceptance thins the tails even at gamma = 0 (law is not the histogram)."""
    p, _, _, _ = _paper_law_cell_probs(rows, 0.0)
    _, c, _, _ = _np_hist(rows.astype(np.float64))
    assert np.abs(p[:100].reshape(10, 10) - c / c.sum()).sum() > 0.05


# --------------------------------------------------------------------------- weights, jit/vmap

def test_zero_weight_rows_do_not_enter_the_histogram(rows):
    w = np.ones(N_ROWS, np.float32)
    w[::3] = 0
    other = rows.copy()
    other[::3] = 50.0                              # far away, weight 0
    key = jax.random.PRNGKey(3)
    for law in ("paper", "mixture"):
        f = jax.jit(partial(histogram_mixture_correct, law=law))
        a = np.asarray(f(key, jnp.asarray(rows), 0.3, w=jnp.asarray(w)))
        b = np.asarray(f(key, jnp.asarray(other), 0.3, w=jnp.asarray(w)))
        np.testing.assert_array_equal(a, b)
        assert a.shape == (N_ROWS, 2) and a.dtype == np.float32
    c, _, _ = histogram2d(jnp.asarray(other), jnp.asarray(w))
    c_np, _, _ = np.histogram2d(rows[w > 0, 0], rows[w > 0, 1], bins=10)
    np.testing.assert_array_equal(np.asarray(c), c_np)


@pytest.mark.slow
def test_jit_vmap_over_t(rows):
    ts = jnp.array([0.0, 0.25, 1.0])
    for law in ("paper", "mixture"):
        f = jax.jit(jax.vmap(lambda k, t: histogram_mixture_correct(k, rows, t, law=law)))
        out = f(jax.random.split(jax.random.PRNGKey(0), 3), ts)
        assert out.shape == (3, N_ROWS, 2) and bool(jnp.all(jnp.isfinite(out)))
    # t = 1 lanes of a vmapped batch over (key, t) are N(0, I)
    g = jax.jit(jax.vmap(lambda k, t: histogram_mixture_correct(k, rows, t)))
    keys = jax.random.split(jax.random.PRNGKey(5), 2000)
    ts = jnp.where(jnp.arange(2000) % 2 == 0, 1.0, 0.0)
    x = np.asarray(g(keys, ts), np.float64)[::2].reshape(-1, 2)
    _check_4se(x, [0.0, 0.0], "vmapped t=1 mean")
    _check_4se(x * x, [1.0, 1.0], "vmapped t=1 second moments")


# --------------------------------------------------------------------------- accumulation

def paper_keep_counts(G: int, m: int) -> np.ndarray:
    """The paper code's own float expression (gaussian_toy_example.py l.153-168): [G] counts."""
    return np.array([int(((i + 1) / G) * m) for i in range(G)], dtype=np.int64)


def keep_counts(G, m):
    return np.asarray(decay_kept_rows(jnp.arange(1, G + 1), G, m))


def test_keep_counts_hand_table():
    # m = 4: row G lists batches b = 1..G, kept = floor(b * 4 / G)
    table = {1: [4], 2: [2, 4], 3: [1, 2, 4], 4: [1, 2, 3, 4], 5: [0, 1, 2, 3, 4],
             6: [0, 1, 2, 2, 3, 4], 9: [0, 0, 1, 1, 2, 2, 3, 3, 4]}
    for G, want in table.items():
        np.testing.assert_array_equal(keep_counts(G, 4), want)
        np.testing.assert_array_equal(paper_keep_counts(G, 4), want)


def test_keep_counts_match_paper_expression_for_m25():
    for G in (1, 2, 3, 7, 24, 25, 26, 100, 333, 500):
        np.testing.assert_array_equal(keep_counts(G, 25), paper_keep_counts(G, 25))
    # training-set sizes of the toy: 50 real + the kept synthetic rows
    assert [int(keep_counts(G, 25).sum()) for G in (1, 2, 3, 500)] == [25, 37, 49, 6025]


def test_accumulate_decay_trains_on_real_rows_and_the_kept_prefix_of_every_batch():
    loop = scl.Config.from_dict({"loop": {"regime": "accumulate_decay", "n": 5, "synthetic_size": 4,
                                          "generations": 6}}).loop
    mixer = make_mixer(loop)
    real = jnp.arange(5.0)[:, None] * jnp.ones((1, 2))
    state, x, w = mixer.init(jax.random.PRNGKey(0), real)
    assert float(w.sum()) == 5
    mix = jax.jit(mixer.mix, static_argnums=())
    for t in range(1, 7):
        batch = 100 * t + jnp.arange(4.0)[:, None] * jnp.ones((1, 2))      # batch t: rows 100t + r
        state, x, w = mix(jax.random.PRNGKey(t), state, None, batch, {}, t)
        x, w = np.asarray(x)[:, 0], np.asarray(w)
        expected = list(range(5)) + [100 * b + r for b in range(1, t + 1) for r in range(keep_counts(t, 4)[b - 1])]
        k = len(expected)
        np.testing.assert_array_equal(w, (np.arange(len(w)) < k).astype(np.float32))   # present rows first
        np.testing.assert_array_equal(x[:k], expected)
