"""Classical families (categorical, KDE, mixture, linear regression) against exact theory and
scikit-learn. Monte Carlo checks pass when |mean - theory| <= 4 SE over R seeds."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl.engine import build_program, flat_inputs
from scl.errors import ConfigError


def within_4se(samples, expected, axis=0):
    samples = np.asarray(samples, np.float64)
    mean = samples.mean(axis)
    R = samples.shape[axis]
    se = np.maximum(samples.std(axis, ddof=1) / np.sqrt(R), 1.0 / R)   # a mean of R counts resolves 1/R
    assert np.all(np.abs(mean - expected) <= 4 * se), f"mean {mean} vs theory {expected} (4 SE = {4 * se})"


def config(truth, model, metrics=(), n=20, generations=5, seeds=1000, regime="replace", **loop):
    return scl.Config.from_dict({
        "name": "classical", "seed": 3, "seeds": seeds, "truth": truth, "model": model,
        "loop": {"generations": generations, "n": n, "regime": regime, **loop},
        "metrics": {"names": list(metrics), "samples": 256},
        "run": {"chunk_size": 1, "progress": False}})


def states_by_generation(cfg, last=None):
    """[(model state pytree of numpy [C, ...], metrics {name: [C]})] for generations 0..last
    (default: all G)."""
    program = build_program(cfg, chunk_size=1)
    keys, knobs = flat_inputs(cfg)
    states, m = program.init(keys, knobs)
    out = [(jax.tree_util.tree_map(np.asarray, states.model), {k: np.asarray(v) for k, v in m.items()})]
    for t in range(1, (cfg.loop.generations if last is None else last) + 1):
        states, m = program.chunk(states, keys, knobs, t)
        out.append((jax.tree_util.tree_map(np.asarray, states.model), {k: np.asarray(v[0]) for k, v in m.items()}))
    return out


# ----------------------------------------------------------------- categorical (THEORY.md 7)

P0 = np.array([0.5, 0.25, 0.15, 0.07, 0.03])


def test_wright_fisher_resampling():
    """Replace, MLE: E p_t = p_0; E[1 - sum p^2] = (1 - sum p0^2)(1 - 1/n)^(t+1) (model g is the
    (g+1)-th refit counting from the truth); P(category i vanishes in one step | p) = (1-p_i)^n."""
    n, G, R = 20, 6, 20000
    cfg = config({"kind": "categorical", "probs": P0.tolist()}, {"family": "categorical"},
                 ["simpson_diversity", "surviving_categories"], n=n, generations=G, seeds=R)
    gens = states_by_generation(cfg)
    het0 = 1 - np.sum(P0 ** 2)
    for g, (state, m) in enumerate(gens):
        within_4se(m["simpson_diversity"], het0 * (1 - 1 / n) ** (g + 1))
        within_4se(state.probs, P0)
    # generation 0 is one resampling step from the truth
    within_4se(gens[0][1]["surviving_categories"], np.sum(1 - (1 - P0) ** n))
    within_4se(gens[0][0].probs == 0, (1 - P0) ** n)
    # one step from a random state: P(p_{t+1,i} = 0 | p_t) = (1 - p_{t,i})^n
    before, after = gens[3][0].probs, gens[4][0].probs
    within_4se((after == 0).astype(float) - (1 - before) ** n, np.zeros(len(P0)))


@pytest.mark.parametrize("regime, loop", [
    ("fresh", {"real_fraction": 0.3}), ("fixed_real", {"lam": 2.0}), ("accumulate", {}),
    ("accumulate_subsample", {"synthetic_size": 10})])
def test_categorical_martingale_every_regime(regime, loop):
    """Every regime mixes real rows (mean p_0) with samples of the current model (mean p_t), so
    E p_t = p_0 for all t; int rows go through the fixed-capacity buffers. Where the real rows stay
    in the training set (fixed_real, accumulate) no category seen in them can vanish."""
    cfg = config({"kind": "categorical", "probs": P0.tolist()}, {"family": "categorical"},
                 ["surviving_categories"], n=20, generations=3, seeds=4000, regime=regime, **loop)
    gens = states_by_generation(cfg)
    within_4se(gens[-1][0].probs, P0)
    if regime in ("fixed_real", "accumulate"):
        np.testing.assert_array_equal(gens[-1][1]["surviving_categories"], gens[0][1]["surviving_categories"])


def test_inverse_cdf_never_returns_a_trailing_empty_row():
    """u * total may round up to total in float32; the pick must stay on a positive-weight row."""
    from scl.families.weighted import inverse_cdf
    cdf = jnp.cumsum(jnp.array([0.1, 0.2, 0.0, 0.0], jnp.float32))
    u = jnp.array([0.0, np.nextafter(np.float32(1), np.float32(0)), 0.34, 0.33], jnp.float32)
    np.testing.assert_array_equal(np.asarray(inverse_cdf(cdf, u)), [0, 1, 1, 0])


def test_pick_rows_two_level_frequencies():
    """Blocked inverse-CDF sampling: frequencies = w / sum w within 4 SE, zero rows never drawn."""
    from scl.families.weighted import pick_rows
    rng = np.random.default_rng(0)
    w = rng.uniform(size=1000) * (rng.uniform(size=1000) < 0.3)
    w[700:] = 0.0
    draws = 1_000_000
    idx = np.asarray(pick_rows(jax.random.PRNGKey(1), jnp.asarray(w, jnp.float32), draws))
    freq = np.bincount(idx, minlength=1000) / draws
    p = w / w.sum()
    assert freq[w == 0].sum() == 0
    assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / draws) + 1e-12)


def test_temperature_and_smoothing():
    """fit: (c + alpha)/(N + k alpha); sample frequencies proportional to p^(1/tau)."""
    from scl.data import make_source
    from scl.families.categorical import CategoricalModel, make_categorical
    cfg = config({"kind": "categorical", "probs": P0.tolist()}, {"family": "categorical"})
    fam = make_categorical(CategoricalModel(), make_source(cfg.truth))
    x = jnp.array([0, 0, 1, 3, 3, 3, 2], jnp.int32)
    w = jnp.array([1, 1, 1, 1, 1, 1, 0], jnp.float32)
    s = fam.fit(None, None, x, w, {"smoothing": 0.5, "temperature": 1.0})
    np.testing.assert_allclose(s.probs, (np.array([2, 1, 0, 3, 0]) + 0.5) / (6 + 2.5), rtol=1e-6)
    tau = 0.5
    draws = np.asarray(fam.sample(jax.random.PRNGKey(0), s, 200_000, {"temperature": tau, "top_k": 0.0, "top_p": 1.0}))
    q = np.asarray(s.probs) ** (1 / tau)
    q /= q.sum()
    within_4se(draws[:, None] == np.arange(5)[None], q)


# ----------------------------------------------------------------- KDE

def test_kde_sample_variance_theory():
    """Fixed h, replace: E S_t^2 = r^(t+1) sigma0^2 + h^2 (n-1)(1 - r^t), r = (n-1)/n, S_t^2 the
    MLE variance of generation t's training rows (derivation in scl.families.kde)."""
    n, h, G, R = 10, 0.3, 6, 20000
    cfg = config({"kind": "gaussian", "dim": 1, "std": 1.5}, {"family": "kde", "bandwidth": h},
                 n=n, generations=G, seeds=R)
    r = (n - 1) / n
    for t, (state, _) in enumerate(states_by_generation(cfg)):
        s2 = state.x[..., 0].var(axis=1)            # all n rows carry weight 1 under replace
        within_4se(s2, r ** (t + 1) * 1.5 ** 2 + h ** 2 * (n - 1) * (1 - r ** t))


def test_kde_log_density_matches_sklearn():
    """KDE log-density = scikit-learn KernelDensity on the rows present (the buffer's padding
    after them is ignored, whatever it holds)."""
    from sklearn.neighbors import KernelDensity
    from scl.families.kde import KDEState, kde_log_prob
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    y = rng.normal(size=(25, 2)).astype(np.float32)
    ours = kde_log_prob(KDEState(jnp.asarray(x), jnp.int32(40), jnp.float32(0.4)), jnp.asarray(y))
    ref = KernelDensity(bandwidth=0.4).fit(x[:40]).score_samples(y)
    np.testing.assert_allclose(np.asarray(ours), ref, atol=2e-4)


def test_kde_fit_counts_the_rows_present():
    """fit reads a mixer's 0/1 weights (rows first) as a row count, for every count up to N."""
    from scl.families.kde import KDEModel, make_kde
    family = make_kde(KDEModel(), None)
    x = jnp.zeros((37, 2))
    for c in range(38):
        w = (jnp.arange(37) < c).astype(jnp.float32)
        assert int(family.init(jax.random.PRNGKey(0), x, w, {"bandwidth": 0.1}).count) == c


def test_kde_bandwidth_rules():
    """Scott h = s n^(-1/(d+4)); Silverman h = s (n (d+2)/4)^(-1/(d+4)), s^2 = mean MLE variance."""
    from scl.families.kde import rule_bandwidth
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2)) * [1.0, 2.0]
    s = np.sqrt(x.var(0).mean())
    xp = jnp.asarray(np.concatenate([x, np.zeros((30, 2))]), jnp.float32)
    w = jnp.asarray(np.r_[np.ones(50), np.zeros(30)], jnp.float32)
    np.testing.assert_allclose(rule_bandwidth(xp, w, "scott"), s * 50 ** (-1 / 6), rtol=1e-5)
    np.testing.assert_allclose(rule_bandwidth(xp, w, "silverman"), s * (50 * 4 / 4) ** (-1 / 6), rtol=1e-5)


def test_generation0_kde_beats_gaussian_on_moons():
    """Held-out NLL of generation 0 on two moons: KDE (h = 0.1) < Gaussian, every seed."""
    nll = {}
    for model in ({"family": "kde", "bandwidth": 0.1}, {"family": "gaussian"}):
        cfg = config({"kind": "moons"}, model, ["nll"], n=300, generations=1, seeds=8)
        nll[model["family"]] = states_by_generation(cfg, last=0)[0][1]["nll"]
    assert np.all(nll["kde"] < nll["gaussian"] - 0.3), nll


# ----------------------------------------------------------------- mixture

def test_generation0_mixture_covers_ring():
    cfg = config({"kind": "eight_gaussians"}, {"family": "mixture", "components": 8},
                 ["modes_covered", "mode_mass_min"], n=400, generations=1, seeds=16)
    m = states_by_generation(cfg, last=0)[0][1]
    np.testing.assert_array_equal(m["modes_covered"], 8.0)
    assert np.all(m["mode_mass_min"] > 0.06)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_em_matches_sklearn_from_same_init(covariance):
    """Our weighted EM (zero-weight padding rows included) = scikit-learn GaussianMixture started
    from the same weights, means and precisions, same number of iterations, reg_covar = floor."""
    from sklearn.mixture import GaussianMixture
    from scl.data import make_source
    from scl.data.toys import EightGaussians
    from scl.families.mixture import kmeans_pp_start, em_step, mixture_log_prob
    x = np.asarray(make_source(EightGaussians(std=0.3)).sample(jax.random.PRNGKey(0), 300))
    xp = jnp.asarray(np.concatenate([x, 5 + np.zeros((50, 2), np.float32)]))
    w = jnp.asarray(np.r_[np.ones(300), np.zeros(50)], jnp.float32)
    diag = covariance == "diag"
    start = jax.jit(kmeans_pp_start, static_argnums=(3, 5))(jax.random.PRNGKey(1), xp, w, 8, 1e-3, diag)
    state = jax.jit(lambda s: jax.lax.fori_loop(0, 15, lambda _, s: em_step(s, xp, w, 1e-3, diag), s))(start)
    covs = np.asarray(start.covs, np.float64)
    prec = np.linalg.inv(covs) if not diag else 1 / np.diagonal(covs, axis1=1, axis2=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(8, covariance_type=covariance, max_iter=15, tol=0.0, reg_covar=1e-3,
                             weights_init=np.asarray(start.weights, np.float64) / np.sum(start.weights),
                             means_init=np.asarray(start.means, np.float64), precisions_init=prec).fit(x)
    ours = float(jnp.mean(mixture_log_prob(state, jnp.asarray(x))))
    assert abs(ours - gm.score(x)) < 1e-3, (ours, gm.score(x))
    np.testing.assert_allclose(np.asarray(state.means), gm.means_, atol=1e-3)


# ----------------------------------------------------------------- linear regression

@pytest.mark.parametrize("regime", ["replace", "accumulate"])
def test_regression_error_theory(regime):
    """Fixed design, OLS, x ~ N(0, I_d): E err_t = d/(n-d-1) (sigma^2 + s^2 t) under replace
    (linear) and d/(n-d-1) (sigma^2 + s^2 sum_{k=2}^{t+1} 1/k^2) under accumulate (bounded);
    derivation in scl.families.regression."""
    d, n, sigma, s, G, R = 3, 12, 1.0, 0.7, 5, 20000
    cfg = config({"kind": "linear_regression", "features": d, "noise": sigma},
                 {"family": "linear_regression", "label_noise": s}, ["regression_error"],
                 n=n, generations=G, seeds=R, regime=regime)
    trm = d / (n - d - 1)
    for t, (_, m) in enumerate(states_by_generation(cfg)):
        growth = t if regime == "replace" else sum(1 / k ** 2 for k in range(2, t + 2))
        within_4se(m["regression_error"], trm * (sigma ** 2 + s ** 2 * growth))


def test_ridge_solution():
    from scl.families.regression import ridge_solve
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    w = np.r_[np.ones(30), np.zeros(10)]
    b = ridge_solve(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), jnp.asarray(w, jnp.float32), 0.2)
    ref = np.linalg.solve(x[:30].T @ x[:30] / 30 + 0.2 * np.eye(3), x[:30].T @ y[:30] / 30)
    np.testing.assert_allclose(np.asarray(b), ref, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- config errors

@pytest.mark.parametrize("changes, field", [
    ({"truth": {"kind": "moons"}, "model": {"family": "categorical"}}, "truth.kind"),
    ({"truth": {"kind": "zipf"}, "model": {"family": "gaussian"}}, "truth.kind"),
    ({"truth": {"kind": "zipf"}, "model": {"family": "kde"}}, "truth.kind"),
    ({"truth": {"kind": "zipf", "categories": 1}, "model": {"family": "categorical"}}, "truth.categories"),
    ({"truth": {"kind": "zipf"}, "model": {"family": "categorical", "temperature": 0}}, "model.temperature"),
    ({"truth": {"kind": "eight_gaussians"}, "model": {"family": "mixture", "components": 30}}, "loop.n"),
    ({"truth": {"kind": "linear_regression", "features": 30}, "model": {"family": "linear_regression"}}, "loop.n"),
    ({"truth": {"kind": "linear_regression", "features": 2, "weights": [1.0]}, "model": {"family": "linear_regression"}},
     "truth.weights"),
    ({"truth": {"kind": "moons"}, "model": {"family": "kde", "bandwidth": -1}}, "model.bandwidth"),
])
def test_config_errors_name_the_field(changes, field):
    base = {"seeds": 2, "loop": {"n": 20, "generations": 2}, "metrics": {"names": []}, **changes}
    with pytest.raises(ConfigError) as e:
        scl.Config.from_dict(base)
    assert e.value.field == field, str(e.value)


def test_inapplicable_metrics_are_refused():
    for truth, model, metric in [({"kind": "zipf"}, {"family": "categorical"}, "sliced_w2"),
                                 ({"kind": "moons"}, {"family": "kde"}, "tv"),
                                 ({"kind": "gaussian"}, {"family": "kde"}, "modes_covered"),
                                 ({"kind": "moons"}, {"family": "kde"}, "regression_error")]:
        cfg = config(truth, model, [metric])
        with pytest.raises(ConfigError, match="metrics.names"):
            build_program(cfg)


def test_family_configs_load():
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "configs"
    for name in ("mixture_ring.yaml", "kde_moons.yaml", "regression_collapse.yaml", "categorical_zipf.yaml"):
        cfg = scl.load_config(root / name)
        build_program(cfg.static_variants()[0][1])   # metrics applicable, program builds


def test_kde_under_accumulate_holds_the_whole_pool_once():
    """The KDE's state is the accumulate pool (the engine keeps no second copy): after G
    generations it holds the n real rows of generation 0 first, then G synthetic batches."""
    from scl.simulate import run_variant

    n, m, G = 12, 5, 3
    cfg = scl.Config.from_dict({"seeds": 2, "truth": {"kind": "moons"}, "model": {"family": "kde", "bandwidth": 0.1},
                                "loop": {"generations": G, "n": n, "synthetic_size": m, "regime": "accumulate"},
                                "metrics": {"names": ["nll"]}, "run": {"chunk_size": G, "progress": False}})
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    start, _ = program.init(keys, knobs)
    _, final = run_variant(cfg)
    assert final.mix == () and start.mix == ()
    np.testing.assert_array_equal(np.asarray(final.model.count), n + G * m)
    assert np.asarray(final.model.x).shape[1] == n + G * m
    np.testing.assert_array_equal(np.asarray(final.model.x)[:, :n], np.asarray(start.model.x)[:, :n])
    assert np.all(np.asarray(final.model.x)[:, n:] != 0)            # every batch was written
