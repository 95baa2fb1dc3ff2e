"""SIMS guidance and Neon on the analytic-score family against the exact laws (scl.theory.guidance):
scl's own sampler (family.sample) on hand-built base / auxiliary states, 4 standard errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl.catalog  # noqa: F401
from scl.config import Config
from scl.data import make_source
from scl.families import make_family
from scl.families.mixture import MixtureState
from scl.families.sims import SimsState
from scl.options import knob_values
from scl.theory.guidance import (chain_arrays, guided_gaussian_chain, guided_gaussian_limit,
                                 neon_parameters, separated_ode_share, tilted_density_gaussian,
                                 tilted_density_shares, two_mode_share)

MB, SB = np.array([1.0, -2.0]), np.array([[1.0, 0.6], [0.6, 0.5]])
MA, SA = np.array([1.3, -1.8]), np.array([[1.5, 0.5], [0.5, 0.8]])
N = 20000


def family(sampler, steps, components=1):
    cfg = Config.from_dict(dict(
        seeds=1, truth={"kind": "gaussian", "dim": 2},
        model={"family": "analytic_diffusion", "sampler": sampler, "sample_steps": steps,
               "components": components, "aux_samples": 16},
        loop={"n": 64, "generations": 1}, run={"progress": False}))
    return make_family(cfg.model, make_source(cfg.truth)), knob_values(cfg.model)


def state(weights, means, covs):
    f = lambda v: jnp.asarray(v, jnp.float32)
    return MixtureState(f(weights), f(means), f(covs))


def draw(fam, s, knobs, key=0):
    return np.asarray(jax.jit(fam.sample, static_argnums=2)(jax.random.PRNGKey(key), s, N, knobs), np.float64)


def assert_gaussian_law(y, mean, cov):
    n = len(y)
    z = (y.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(z) < 4), (y.mean(0), mean)
    se = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / n)
    assert np.all(np.abs(np.cov(y.T) - cov) < 4 * se), (np.cov(y.T), cov)


@pytest.mark.parametrize("sampler", ["ddim", pytest.param("ancestral", marks=pytest.mark.slow)])
def test_guided_gaussian_law_is_the_discrete_chain_law(sampler):
    """Gaussian base and aux: the guided chain's law is the exact propagated Gaussian (w = 1,
    temperature 0.8, 6 steps), and not the tilted density p_b^2 / p_a."""
    steps, w, tau = 6, 1.0, 0.8
    fam, knobs = family(sampler, steps)
    s = SimsState(state([1.0], MB[None], SB[None]), state([1.0], MA[None], SA[None]))
    y = draw(fam, s, {**knobs, "sims_weight": w, "temperature": tau})
    mean, cov = guided_gaussian_chain(chain_arrays("linear", 1000, steps, sampler), MB, SB, MA, SA, w, tau)
    assert_gaussian_law(y, mean, cov)
    dmean, _ = tilted_density_gaussian(MB, SB, MA, SA, w)
    assert np.abs(y.mean(0) - dmean).max() > 10 * np.sqrt(np.diag(cov).max() / N)


@pytest.mark.parametrize("sampler", ["ddim", pytest.param("ancestral", marks=pytest.mark.slow)])
def test_two_mode_shares_are_the_exact_chain_shares(sampler):
    """Two modes N(+-2 e, 0.2 I), base + share 0.4, aux 0.6, w = 1.5, temperature 0.9, 8 steps."""
    mu, c, sb, sa, w, tau, steps = 2.0, 0.2, 0.4, 0.6, 1.5, 0.9, 8
    fam, knobs = family(sampler, steps, components=2)
    e = np.array([0.6, 0.8])
    means = np.stack([mu * e, -mu * e])
    covs = np.stack([c * np.eye(2)] * 2)
    s = SimsState(state([sb, 1 - sb], means, covs), state([sa, 1 - sa], means, covs))
    y = draw(fam, s, {**knobs, "sims_weight": w, "temperature": tau})
    got = np.mean(y @ e > 0)
    want = two_mode_share(chain_arrays("linear", 1000, steps, sampler), mu, c, sb, sa, w, tau)
    assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / N), (got, want)
    dens = tilted_density_shares([sb, 1 - sb], [sa, 1 - sa], w)[0]
    assert abs(got - dens) > 10 * np.sqrt(want * (1 - want) / N)


def test_neon_law_is_the_plain_chain_of_the_extrapolated_gaussian():
    """Neon v = 0.5 on the analytic Gaussian: parameters (1 + v) base - v aux (projection inactive),
    then the plain DDIM chain's exact law (5 steps)."""
    steps, v = 5, 0.5
    fam, knobs = family("ddim", steps)
    s = SimsState(state([1.0], MB[None], SB[None]), state([1.0], MA[None], 0.6 * SB[None]))
    y = draw(fam, s, {**knobs, "neon_weight": v}, key=3)
    _, means, covs = neon_parameters([1.0], MB[None], SB[None], [1.0], MA[None], 0.6 * SB[None], v)
    np.testing.assert_allclose(covs[0], 1.2 * SB)
    mean, cov = guided_gaussian_chain(chain_arrays("linear", 1000, steps, "ddim"), means[0], covs[0],
                                      means[0], covs[0], 0.0)
    assert_gaussian_law(y, mean, cov)


def test_neon_projection_floors_eigenvalues_and_clips_weights():
    wts, _, covs = neon_parameters([0.9, 0.1], np.zeros((2, 1)), [[[1.0]], [[1.0]]],
                                   [0.5, 0.5], np.zeros((2, 1)), [[[3.0]], [[0.5]]], 1.0, floor=1e-3)
    np.testing.assert_allclose(wts, [1.0, 0.0])                # (1.3, -0.3) clipped, renormalised
    np.testing.assert_allclose(covs[:, 0, 0], [1e-3, 1.5])      # 2 - 3 = -1 floored; 2 - 0.5


def test_many_step_chains_reach_the_continuous_limits_not_the_density():
    """1-D, s_b = 0.5, s_a = 0.8, w = 1: DDIM -> var s_b^2 / s_a = 0.3125, ancestral -> 0.336,
    the tilted density 1 / (2 / 0.5 - 1 / 0.8) = 0.364; 2000 steps reach the limits within 1 %."""
    for sampler in ("ddim", "ancestral"):
        m, C = guided_gaussian_chain(chain_arrays("linear", 2000, 2000, sampler), [1.0], [[0.5]],
                                     [0.3], [[0.8]], 1.0)
        lm, lv = guided_gaussian_limit(1.0, 0.5, 0.3, 0.8, 1.0, sampler)
        np.testing.assert_allclose([m[0], C[0, 0]], [lm, lv], rtol=1e-2)
    assert guided_gaussian_limit(1.0, 0.5, 0.3, 0.8, 1.0, "ddim")[1] == pytest.approx(0.5 ** 2 / 0.8)
    dm, dv = tilted_density_gaussian([1.0], [[0.5]], [0.3], [[0.8]], 1.0)
    assert dv[0, 0] == pytest.approx(1 / (2 / 0.5 - 1 / 0.8))
    # equal covariances: all three give N((1+w) m_b - w m_a, S)
    for sampler in ("ddim", "ancestral"):
        lm, lv = guided_gaussian_limit(1.0, 0.5, 0.3, 0.5, 1.0, sampler)
        np.testing.assert_allclose([lm, lv], [1.7, 0.5], rtol=1e-6)


def test_share_law_explains_the_measured_ddim_shortfall():
    """Modes +-3, cov 0.1 I, base 0.5 / 0.5, aux from aux_proportions_for(target 0.7), 200 DDIM
    steps: exact shares 0.648 (w = 0.5) and 0.674 (w = 1), as the sims branch measured."""
    from scl.families.sims import aux_proportions_for

    ch = chain_arrays("linear", 1000, 200, "ddim")
    for w, measured in ((0.5, 0.648), (1.0, 0.674)):
        a = aux_proportions_for([0.7, 0.3], [0.5, 0.5], w)
        assert two_mode_share(ch, 3.0, 0.1, 0.5, a[0], w) == pytest.approx(measured, abs=0.003)


@pytest.mark.slow
def test_separated_limit_is_universal():
    """mu = 12, c = 0.01, 1000 DDIM steps: the share is the separated-limit ODE's started where the
    chain starts, x0 = sqrt(abar_T) mu (the chain's N(0, I) start is not the marginal there)."""
    from scl.families.diffusion import alpha_bars

    ch = chain_arrays("linear", 1000, 1000, "ddim")
    x0 = np.sqrt(alpha_bars("linear", 1000)[-1]) * 12.0
    for sb, sa, w in ((0.5, 0.3, 1.0), (0.3, 0.3, 0.0)):
        got = two_mode_share(ch, 12.0, 0.01, sb, sa, w)
        assert got == pytest.approx(separated_ode_share(sb, sa, w, x0=x0), abs=2e-3)
