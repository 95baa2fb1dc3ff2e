"""Exact laws of SIMS guidance and Neon on the analytic-score diffusion family (host NumPy/SciPy).

Guided noise prediction eps = (1 + w) eps_b - w eps_a with exact diffused scores
(scl.families.analytic_diffusion), sampled by the DDIM / ancestral chain of
scl.families.diffusion (``denoising_chain``, no ``clip_denoised``: the exact laws need it off).

Gaussian base N(m_b, S_b), aux N(m_a, S_a). At noise level a, Sigma_t = a S + (1 - a) I and
eps(z) = sqrt(1 - a) Sigma_t^-1 (z - sqrt(a) m), so the guided eps = E_t z + e_t is affine and every
step z' = ra' z0 + r1a' eps + sigma tau xi (z0 = (z - r1a eps) / ra) is z' = A z + c + sigma tau xi:
from N(0, tau^2 I) the discrete chain gives an exact Gaussian (:func:`guided_gaussian_chain`).

Continuous time (commuting covariances, per eigen-direction with base / aux variances s_b, s_a,
u_x(a) = a s_x + 1 - a, R(a) = u_b^(1+w) u_a^-w, h(a) = (1+w) m_b / u_b - w m_a / u_a):

    probability-flow ODE (DDIM, many steps):  var = tau^2 s_b^(1+w) s_a^-w,
        mean = sqrt(R(1)) int_0^1 h / (2 sqrt(a) sqrt(R)) da
    reverse SDE (ancestral, many steps):      var = tau^2 R(1)^2 int_0^1 R^-2 da,
        mean = R(1) int_0^1 h / R da
    tilted density p_b^(1+w) / p_a^w:         1 / var = (1+w) / s_b - w / s_a,
        mean = var ((1+w) m_b / s_b - w m_a / s_a)

(:func:`guided_gaussian_limit`, :func:`tilted_density_gaussian`). All three agree when S_a = S_b
(then each is N((1+w) m_b - w m_a, S_b)) or w = 0, and differ otherwise: the ODE extrapolates the
variance geometrically, the density harmonically, the SDE in between.

Two separated modes (components N(+-mu e, c I), base weights pi_b, aux weights pi_a, same
components): the problem is exactly 1-D along e with score -z / u + (r / u) tanh(r z / u + l),
r = sqrt(a) mu, u = a c + 1 - a, guided through G = (1+w) tanh(. + l_b) - w tanh(. + l_a),
l = log(pi_+ / pi_-) / 2. DDIM is a monotone map of z_T: the share of
the + mode is P(N(0, tau^2) > z*) with z* its separatrix (:func:`two_mode_share`, bisection);
ancestral: the backward recursion of P(+ | z) through the chain (Gauss-Hermite). The mode is
chosen where r ~ 1, so the separated limit (mu -> oo) is universal: with x = r, the ODE is
dz/dx = G(x z), independent of mu and c (:func:`separated_ode_share`). None of these equals the
tilted density's share pi_b^(1+w) pi_a^-w / Z (:func:`tilted_density_shares`).

Neon (analytic family): theta = (weights, means, covs) extrapolated leafwise, (1 + v) theta_b -
v theta_a, then projected (covariance eigenvalues floored, negative weights clipped and
renormalised): :func:`neon_parameters`; its law is the plain chain's of that model.
"""
from __future__ import annotations

import numpy as np

from scl.families.diffusion import denoising_chain


def chain_arrays(schedule: str, timesteps: int, steps: int, sampler: str):
    """The sampler's per-step arrays (t/T, sqrt a, sqrt(1-a), sqrt a', sqrt(1-a'-sigma^2), sigma)
    as float64 numpy [S] each (scl.families.diffusion.denoising_chain)."""
    return tuple(np.asarray(v, np.float64) for v in denoising_chain(schedule, timesteps, steps, sampler))


def _guided_affine(a, mb, Sb, ma, Sa, w):
    """eps(z) = E z + e of the guided exact predictor at noise level a: (E [d, d], e [d])."""
    d = len(mb)
    Pb = np.linalg.inv(a * Sb + (1 - a) * np.eye(d))
    Pa = np.linalg.inv(a * Sa + (1 - a) * np.eye(d))
    E = np.sqrt(1 - a) * ((1 + w) * Pb - w * Pa)
    e = -np.sqrt(1 - a) * np.sqrt(a) * ((1 + w) * Pb @ mb - w * Pa @ ma)
    return E, e


def guided_gaussian_chain(chain, mean_b, cov_b, mean_a, cov_a, w, temperature=1.0):
    """Exact law (mean [d], cov [d, d]) of the discrete guided chain from N(0, tau^2 I).

    ``chain``: :func:`chain_arrays`; w = 0 (or aux = base) is the plain sampler's law."""
    mb, ma = np.asarray(mean_b, np.float64), np.asarray(mean_a, np.float64)
    Sb, Sa = np.asarray(cov_b, np.float64), np.asarray(cov_a, np.float64)
    d = len(mb)
    _, ra, r1a, ran, r1an, sig = chain
    m, C = np.zeros(d), temperature ** 2 * np.eye(d)
    for i in range(len(ra)):
        E, e = _guided_affine(ra[i] ** 2, mb, Sb, ma, Sa, w)
        k = r1an[i] - ran[i] * r1a[i] / ra[i]
        A = ran[i] / ra[i] * np.eye(d) + k * E
        m = A @ m + k * e
        C = A @ C @ A.T + (sig[i] * temperature) ** 2 * np.eye(d)
    return m, 0.5 * (C + C.T)


def tilted_density_gaussian(mean_b, cov_b, mean_a, cov_a, w):
    """p_b^(1+w) / p_a^w for Gaussians: (mean [d], cov [d, d]); precision (1+w) S_b^-1 - w S_a^-1
    (must be positive definite)."""
    Pb, Pa = np.linalg.inv(cov_b), np.linalg.inv(cov_a)
    P = (1 + w) * Pb - w * Pa
    C = np.linalg.inv(P)
    return C @ ((1 + w) * Pb @ np.asarray(mean_b, float) - w * Pa @ np.asarray(mean_a, float)), C


def guided_gaussian_limit(mean_b, var_b, mean_a, var_a, w, sampler="ddim", temperature=1.0):
    """Continuous-time (many-step) law of one eigen-direction: (mean, var) of the
    probability-flow ODE (``ddim``) or the reverse SDE (``ancestral``); formulas in the module
    docstring (the start abar_T -> 0)."""
    from scipy.integrate import quad

    ub = lambda a: a * var_b + 1 - a
    ua = lambda a: a * var_a + 1 - a
    R = lambda a: ub(a) ** (1 + w) * ua(a) ** (-w)
    h = lambda a: (1 + w) * mean_b / ub(a) - w * mean_a / ua(a)
    if sampler == "ddim":
        var = temperature ** 2 * R(1.0)
        mean = np.sqrt(R(1.0)) * quad(lambda a: h(a) / (2 * np.sqrt(a) * np.sqrt(R(a))), 0, 1)[0]
    else:
        var = temperature ** 2 * R(1.0) ** 2 * quad(lambda a: R(a) ** -2, 0, 1)[0]
        mean = R(1.0) * quad(lambda a: h(a) / R(a), 0, 1)[0]
    return mean, var


def tilted_density_shares(pi_b, pi_a, w):
    """[K] mode shares of the tilted density p_b^(1+w) / p_a^w for separated equal-shape modes."""
    logit = (1 + w) * np.log(np.asarray(pi_b, float)) - w * np.log(np.asarray(pi_a, float))
    p = np.exp(logit - logit.max())
    return p / p.sum()


def _half_logit(p_plus):
    return 0.5 * np.log(p_plus / (1 - p_plus))


def _two_mode_step(chain, i, z, mu, c, lb, la, w):
    """One guided chain step's deterministic part A(z) of the 1-D two-mode problem; z [...]."""
    _, ra, r1a, ran, r1an, _ = chain
    a = ra[i] ** 2
    r, u = ra[i] * mu, a * c + 1 - a
    G = (1 + w) * np.tanh(r * z / u + lb) - w * np.tanh(r * z / u + la)
    eps = -r1a[i] * (-z / u + r / u * G)            # eps = -sqrt(1 - a) score
    z0 = (z - r1a[i] * eps) / ra[i]
    return ran[i] * z0 + r1an[i] * eps


def _positive_mass(final, norm, lo=-8.0, hi=8.0, grid=8001):
    """N(0, 1) mass of {z0: final(z0) > 0}: sign changes located on a grid, refined by bisection
    (the guided map need not be monotone at large w and few steps)."""
    zs = np.linspace(lo, hi, grid)
    pos = final(zs) > 0
    edges = [lo]
    for j in np.nonzero(pos[1:] != pos[:-1])[0]:
        a, b = zs[j], zs[j + 1]
        for _ in range(50):
            m = 0.5 * (a + b)
            a, b = (m, b) if (final(np.array([m]))[0] > 0) == pos[j] else (a, m)
        edges.append(0.5 * (a + b))
    edges.append(hi)
    signs = [pos[0]] + [not pos[0] if k % 2 == 0 else pos[0] for k in range(len(edges) - 2)]
    return float(sum(norm.cdf(edges[k + 1]) - norm.cdf(edges[k]) for k in range(len(edges) - 1) if signs[k]))


def two_mode_share(chain, mu, c, share_b, share_a, w, temperature=1.0, grid=4001, nodes=40):
    """Exact share of the + mode after the discrete guided chain for base / aux mixtures
    share N(+mu e, c I) + (1 - share) N(-mu e, c I) (same components; share_b, share_a: the +
    weights). DDIM (all sigma = 0): the sign changes of the final z over z_T, by bisection. Ancestral: backward recursion of
    f(z) = P(+ | z) on a grid with ``nodes``-point Gauss-Hermite quadrature."""
    from scipy.stats import norm

    lb, la = _half_logit(share_b), _half_logit(share_a)
    sig = chain[5]
    S = len(sig)
    if np.all(sig == 0):
        def final(z0):
            z = np.asarray(z0, float) * temperature
            for i in range(S):
                z = _two_mode_step(chain, i, z, mu, c, lb, la, w)
            return z
        return _positive_mass(final, norm)
    L = 4.0 * temperature + 2.0 * mu + 4.0
    zs = np.linspace(-L, L, grid)
    x, wt = np.polynomial.hermite_e.hermegauss(nodes)
    wt = wt / wt.sum()
    f = (zs > 0).astype(float)
    for i in reversed(range(S)):
        mean = _two_mode_step(chain, i, zs, mu, c, lb, la, w)
        pts = mean[:, None] + sig[i] * temperature * x[None, :]
        f = np.interp(pts, zs, f) @ wt
    dens = norm.pdf(zs, scale=temperature)
    return float(np.trapezoid(dens * f, zs) / np.trapezoid(dens, zs))


def separated_ode_share(share_b, share_a, w, temperature=1.0, x0=1e-4, x1=60.0):
    """+ share of the guided probability-flow ODE in the separated limit (mu -> oo): the 1-D ODE
    dz/dx = G(x z) from z(x0) ~ N(0, tau^2) (module docstring); separatrix by bisection. To compare
    with a chain, x0 = sqrt(abar_T) mu: the chain's N(0, I) start is not the marginal there, which
    moves the share by O(x0) (w = 0, pi = 0.3: 0.31 at mu = 12, 0.325 at mu = 30)."""
    from scipy.integrate import solve_ivp
    from scipy.stats import norm

    lb, la = _half_logit(share_b), _half_logit(share_a)
    rhs = lambda x, z: (1 + w) * np.tanh(x * z + lb) - w * np.tanh(x * z + la)

    def end(z0):
        return solve_ivp(rhs, (x0, x1), [z0], rtol=1e-10, atol=1e-12).y[0, -1]
    lo, hi = -8.0, 8.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if end(mid) > 0 else (mid, hi)
    return float(norm.sf(0.5 * (lo + hi) / temperature))


def neon_parameters(weights_b, means_b, covs_b, weights_a, means_a, covs_a, v, floor=1e-6):
    """Neon's model for the analytic family: (weights [K], means [K, d], covs [K, d, d]) =
    (1 + v) base - v aux leafwise, covariances symmetrised and (if an eigenvalue < floor) rebuilt
    with eigenvalues clipped at floor; weights clipped at 0 and renormalised if one is negative."""
    ex = lambda b, a: (1 + v) * np.asarray(b, np.float64) - v * np.asarray(a, np.float64)
    wts, means, covs = ex(weights_b, weights_a), ex(means_b, means_a), ex(covs_b, covs_a)
    if np.any(wts < 0):
        wts = np.maximum(wts, 0) / np.maximum(wts, 0).sum()
    covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
    vals, vecs = np.linalg.eigh(covs)
    low = np.any(vals < floor, -1)
    clipped = np.einsum("...ij,...j,...kj->...ik", vecs, np.maximum(vals, floor), vecs)
    covs = np.where(low[..., None, None], clipped, covs)
    return wts, means, covs
