"""SIMS negative guidance, Neon, temperature and the analytic-score diffusion family."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl.catalog  # noqa: F401
from scl.config import Config, ConfigError
from scl.data import make_source
from scl.engine import build_program
from scl.families import make_family
from scl.families.analytic_diffusion import diffused_eps, gaussian_mle
from scl.families.diffusion import diffusion_spec
from scl.families.neural import continue_fit
from scl.families.mixture import MixtureState, mixture_log_prob
from scl.families.sims import (SimsState, aux_proportions_for, extrapolate, guided_sample,
                               neural_guidable)
from scl.options import knob_values
from scl.simulate import run_variant

MEAN = np.array([1.0, -2.0])
COV = np.array([[1.0, 0.6], [0.6, 0.5]])


def config(family="analytic_diffusion", n=256, generations=1, **model):
    extra = {"width": 16, "depth": 1, "steps": 30, "timesteps": 50} if family == "diffusion" else {}
    return Config.from_dict(dict(
        seeds=1, truth={"kind": "gaussian", "dim": 2, "mean": MEAN.tolist(), "cov": COV.tolist()},
        model={"family": family, "sample_steps": 20, **extra, **model},
        metrics={"names": ["sliced_w2"], "samples": 128},
        loop={"n": n, "generations": generations, "regime": "fresh", "real_fraction": 0.5},
        run={"progress": False}))


def built(cfg, key=0):
    source = make_source(cfg.truth)
    fam = make_family(cfg.model, source)
    x = source.sample(jax.random.PRNGKey(key), cfg.loop.n)
    state = jax.jit(fam.init)(jax.random.PRNGKey(key + 1), x, jnp.ones(cfg.loop.n), knob_values(cfg.model))
    return fam, state


def draw(fam, state, knobs, n=256, key=7):
    return np.asarray(jax.jit(fam.sample, static_argnums=2)(jax.random.PRNGKey(key), state, n, knobs))


@pytest.mark.parametrize("family", ["analytic_diffusion", "diffusion"])
def test_zero_weights_equal_the_plain_sampler_bit_for_bit(family):
    cfg = config(family, aux_samples=64, aux_steps=5)
    fam, state = built(cfg)
    assert isinstance(state, SimsState)
    plain_cfg = config(family)
    plain = make_family(plain_cfg.model, make_source(plain_cfg.truth))
    y_plain = draw(plain, state.base, knob_values(plain_cfg.model))
    y_sims = draw(fam, state, knob_values(cfg.model))
    np.testing.assert_array_equal(y_sims, y_plain)


def test_guidance_with_aux_equal_to_base_is_plain():
    cfg = config(aux_samples=64)
    fam, state = built(cfg)
    same = SimsState(state.base, state.base)
    knobs = {**knob_values(cfg.model), "sims_weight": 1.7, "neon_weight": 0.6}
    y = draw(fam, same, knobs)
    y0 = draw(fam, same, knob_values(cfg.model))
    np.testing.assert_allclose(y, y0, atol=2e-5)
    # and with the real auxiliary the guided samples differ
    assert np.abs(draw(fam, state, knobs) - y0).max() > 1e-3


def test_guided_sampler_is_the_linear_combination_by_hand():
    cfg = config("diffusion", aux_samples=64, aux_steps=20)
    fam, state = built(cfg)
    spec = diffusion_spec(cfg.model, 2)
    w = 0.8
    knobs = {**knob_values(cfg.model), "sims_weight": w}
    got = draw(fam, state, knobs, key=3)

    def by_hand(key):
        pb, pa = state.base.params, state.aux.params
        z = spec.sample_with(lambda z, t: (1 + w) * spec.predict(pb, z, t) - w * spec.predict(pa, z, t), key, 256)
        return state.base.shift + state.base.scale * z

    want = np.asarray(jax.jit(by_hand)(jax.random.PRNGKey(3)))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_neon_parameters_are_the_leafwise_extrapolation():
    cfg = config("diffusion", aux_samples=64, aux_steps=20)
    _, state = built(cfg)
    v = 0.3
    got = extrapolate(state.base.params, state.aux.params, v)
    for g, b, a in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(state.base.params),
                       jax.tree_util.tree_leaves(state.aux.params)):
        np.testing.assert_allclose(g, (1 + v) * np.asarray(b) - v * np.asarray(a), rtol=1e-6, atol=1e-7)
    # Neon sampling = the plain sampler of the extrapolated network
    spec = diffusion_spec(cfg.model, 2)
    g = neural_guidable(spec, lambda key, base, x, w, knobs: continue_fit(
        spec, cfg.model, key, base, x, w, knobs, cfg.model.aux_steps)[0])
    knobs = {**knob_values(cfg.model), "neon_weight": v}
    neon = guided_sample(g, jax.random.PRNGKey(4), state, 64, knobs)
    plain_cfg = config("diffusion")
    plain = make_family(plain_cfg.model, make_source(plain_cfg.truth))
    want = plain.sample(jax.random.PRNGKey(4), state.base._replace(params=got), 64, knob_values(plain_cfg.model))
    np.testing.assert_allclose(neon, want, atol=1e-5)


def test_analytic_mle_equals_numpy_weighted_moments():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3))
    w = rng.uniform(0.1, 2.0, size=50)
    s = gaussian_mle(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), 0.0)
    np.testing.assert_allclose(s.means[0], np.average(x, axis=0, weights=w), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.covs[0], np.cov(x.T, aweights=w, bias=True), rtol=1e-4, atol=1e-5)


def test_analytic_eps_is_minus_root_one_minus_abar_times_the_score():
    state = MixtureState(jnp.array([0.3, 0.7]), jnp.array([[1.0, -1.0], [-2.0, 0.5]]),
                         jnp.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.8]]]))
    z = jax.random.normal(jax.random.PRNGKey(0), (5, 2)) * 2
    for abar in (0.05, 0.5, 0.97):
        diffused = MixtureState(state.weights, jnp.sqrt(abar) * state.means,
                                abar * state.covs + (1 - abar) * jnp.eye(2))
        score = jax.vmap(jax.grad(lambda p: mixture_log_prob(diffused, p[None])[0]))(z)
        eps = diffused_eps(state, z, jnp.full((5,), abar))
        np.testing.assert_allclose(eps, -np.sqrt(1 - abar) * score, rtol=1e-4, atol=1e-5)


def test_analytic_samples_match_the_fitted_gaussian():
    cfg = config(sampler="ddim", sample_steps=200)
    fam, state = built(cfg)
    n = 4000
    y = draw(fam, state, knob_values(cfg.model), n=n)
    mean, cov = np.asarray(state.means[0]), np.asarray(state.covs[0])
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(y.mean(0) - mean) < 4 * se), (y.mean(0), mean)
    emp = np.cov(y.T)
    se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / n)
    assert np.all(np.abs(emp - cov) < 4 * se_cov), (emp, cov)


def test_analytic_neon_and_temperature_give_the_extrapolated_gaussian():
    """Neon on the analytic family: the plain sampler of N((1+v) mu_b - v mu_a, (1+v) C_b - v C_a)."""
    cfg = config(sampler="ddim", sample_steps=200, aux_samples=256)
    fam, state = built(cfg)
    v = 0.5
    y = draw(fam, state, {**knob_values(cfg.model), "neon_weight": v}, n=4000)
    mean = (1 + v) * np.asarray(state.base.means[0]) - v * np.asarray(state.aux.means[0])
    cov = (1 + v) * np.asarray(state.base.covs[0]) - v * np.asarray(state.aux.covs[0])
    np.testing.assert_allclose(y.mean(0), mean, atol=4 * np.sqrt(np.diag(cov).max() / 4000))
    np.testing.assert_allclose(np.cov(y.T), cov, atol=0.08)


def test_sims_state_keeps_the_aux_through_two_generations():
    cfg = config(aux_samples=64, generations=2)
    metrics, states = run_variant(cfg)
    model = states.model
    assert isinstance(model, SimsState)
    # the aux is the MLE of 64 base samples: close to, but not equal to, the base
    diff = np.abs(np.asarray(model.aux.means) - np.asarray(model.base.means)).max()
    assert 1e-4 < diff < 1.0
    assert np.all(np.isfinite(np.asarray(metrics["sliced_w2"])))


def test_sims_weight_sweep_shares_one_program():
    a = build_program(config(aux_samples=64, sims_weight=0.0))
    b = build_program(config(aux_samples=64, sims_weight=2.0, neon_weight=-1.0, temperature=0.5))
    assert a is b
    assert build_program(config(aux_samples=64, synthetic="plain")) is not a


def test_aux_proportions_for_inverts_the_share_law():
    base, target, w = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5]), 1.5
    a = aux_proportions_for(target, base, w)
    guided = base ** (1 + w) * a ** (-w)
    np.testing.assert_allclose(guided / guided.sum(), target, rtol=1e-10)


def test_bad_sims_settings_stop_with_the_field():
    with pytest.raises(ConfigError, match="model.aux_proportions"):
        config(aux_proportions=[0.5, 0.5])
    with pytest.raises(ConfigError, match="model.temperature"):
        config(temperature=0.0)
