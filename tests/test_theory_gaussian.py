"""THEORY.md §1-§4 reproduced by the engine within 4 standard errors over 10^4 seeds.

Indexing: THEORY's model t is fitted on samples of model t-1, model 1 on real data; scl's
generation g is THEORY's model t = g + 1.

The replace and fixed_real results run twice: drawing every row (model.draw: rows) and drawing
the training set's mean and scatter directly (statistics, scl.moments); both must match theory.
"""
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import digamma, polygamma

from helpers import final_states, gaussian_cfg
from scl.engine import build_program, flat_inputs
from scl.families.gaussian import GaussianState

R = 10_000
N = 10
G = 12
GENS = [0, 3, 7, 12]          # scl generations checked


DRAWS = ["statistics", "rows"]


@pytest.fixture(scope="module", params=DRAWS)
def replace_mle(request):
    metrics, states = final_states(gaussian_cfg(n=N, generations=G, seeds=R, draw=request.param))
    return metrics


@pytest.fixture(scope="module", params=DRAWS)
def replace_unbiased(request):
    metrics, _ = final_states(gaussian_cfg(n=N, generations=G, seeds=R, estimator="unbiased", draw=request.param))
    return metrics


def test_replace_mle_variance_collapses_as_r_to_the_t(replace_mle, check_4se):
    r = (N - 1) / N
    for g in GENS:
        t = g + 1
        check_4se(replace_mle["trace_ratio"][g], r ** t)


def test_replace_mle_log_variance_drifts_linearly(replace_mle, check_4se):
    step = digamma((N - 1) / 2) + np.log(2 / N)
    for g in GENS:
        t = g + 1
        logs = replace_mle["logdet_ratio"][g]
        check_4se(logs, t * step)
        # Var log sigma^2 = t psi'((n-1)/2): check the second moment about the theoretical mean.
        var_theory = t * polygamma(1, (N - 1) / 2)
        check_4se((logs - t * step) ** 2, var_theory)


def test_replace_mle_mean_wanders_and_conservation_law(replace_mle, check_4se):
    r = (N - 1) / N
    for g in GENS:
        t = g + 1
        check_4se(replace_mle["mean_sqerr"][g], 1 - r ** t)
        check_4se(replace_mle["trace_ratio"][g] + replace_mle["mean_sqerr"][g], 1.0)


def test_unbiased_variance_is_a_martingale_that_still_collapses(replace_unbiased, check_4se):
    step = digamma((N - 1) / 2) + np.log(2 / (N - 1))
    for g in GENS:
        t = g + 1
        check_4se(replace_unbiased["trace_ratio"][g], 1.0)
        check_4se(replace_unbiased["logdet_ratio"][g], t * step)
        check_4se(replace_unbiased["mean_sqerr"][g], t / N)
    assert step < 0  # so sigma_t -> 0 almost surely


def test_conservation_fails_for_unbiased_estimator(replace_unbiased):
    """The bug detector of THEORY §1: E[sigma^2 + (mu - mu0)^2] grows for the unbiased fit."""
    total = replace_unbiased["trace_ratio"][G] + replace_unbiased["mean_sqerr"][G]
    se = total.std() / np.sqrt(R)
    assert total.mean() - (1 + (G + 1) / N) == pytest.approx(0, abs=4 * se)
    assert total.mean() > 1 + 20 * se


@pytest.mark.parametrize("draw", DRAWS)
def test_d_dimensional_covariance_and_matrix_conservation(draw, check_4se):
    d, n, g = 3, 12, 4
    cov0 = np.array([[1.0, 0.4, 0.1], [0.4, 2.0, -0.3], [0.1, -0.3, 0.5]])
    cfg = gaussian_cfg(dim=d, n=n, generations=g, seeds=R, draw=draw).set("truth.cov", cov0.tolist())
    _, states = final_states(cfg)
    r, t = (n - 1) / n, g + 1
    cov = np.asarray(states.model.cov, np.float64)            # [R, d, d]
    dm = np.asarray(states.model.mean, np.float64)            # truth mean is 0
    iu = np.triu_indices(d)
    check_4se(cov[:, iu[0], iu[1]], r ** t * cov0[iu])
    total = cov + dm[:, :, None] * dm[:, None, :]
    check_4se(total[:, iu[0], iu[1]], cov0[iu])


def test_accumulate_product_formula(check_4se):
    n, g = 10, 10
    metrics, _ = final_states(gaussian_cfg(n=n, generations=g, seeds=R, regime="accumulate"))
    for gen in (0, 1, 4, 10):
        T = gen + 1
        expected = np.prod([1 - 1 / (n * k ** 2) for k in range(1, T + 1)])
        check_4se(metrics["trace_ratio"][gen], expected)
        check_4se(metrics["mean_sqerr"][gen], 1 - expected)
    # no collapse: the limit sin(pi/sqrt n)/(pi/sqrt n) bounds every generation from below
    limit = np.sin(np.pi / np.sqrt(n)) / (np.pi / np.sqrt(n))
    assert metrics["trace_ratio"][g].mean() > limit - 4 * metrics["trace_ratio"][g].std() / np.sqrt(R)


@pytest.mark.parametrize("draw", ["statistics", pytest.param("rows", marks=pytest.mark.slow)])  # rows: n = 20000
@pytest.mark.parametrize("lam", [0.5, 1.0, 3.0])
def test_fixed_real_contracts_by_lambda_over_one_plus_lambda(lam, draw, check_4se):
    """THEORY §4: start from a perturbed model; E[mu_t] - mu0 = (lam/(1+lam))^t delta exactly, and
    at large n the variance follows sigma'^2 = (s_d^2 + lam s^2)/(1+lam) + lam (mu-mu_d)^2/(1+lam)^2."""
    n, seeds, gens = 20_000, 200, 6
    cfg = gaussian_cfg(n=n, generations=gens, seeds=seeds, regime="fixed_real", lam=lam,
                       chunk_size=1, metrics=("trace_ratio",), draw=draw)
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    states, _ = program.init(keys, knobs)
    delta, scale = 2.0, 3.0
    states = states._replace(model=GaussianState(states.model.mean + delta, states.model.cov * scale))
    mu, var = delta, scale          # deterministic population recursion, truth N(0, 1)
    c = lam / (1 + lam)
    for t in range(1, gens + 1):
        states, _ = program.chunk(states, keys, knobs, t)
        mu, var = c * mu, (1 + lam * var) / (1 + lam) + lam * mu ** 2 / (1 + lam) ** 2
        check_4se(np.asarray(states.model.mean[:, 0], np.float64), delta * c ** t)
        got = np.asarray(states.model.cov[:, 0, 0], np.float64)
        assert abs(got.mean() - var) <= 4 * got.std() / np.sqrt(seeds) + 2e-4, (t, got.mean(), var)
