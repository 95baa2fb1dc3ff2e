"""What the predictors share: reading a sweep point duck-typed (never scl.config)."""
from __future__ import annotations

import numpy as np


def plain(cfg) -> bool:
    """No curation and no correction stage."""
    return getattr(cfg, "curation", None) is None and getattr(cfg, "correction", None) is None


def ideal_correction(cfg):
    """gamma of an ``ideal`` corrector, 0.0 without one, None for any other stage (or curation)."""
    if getattr(cfg, "curation", None) is not None:
        return None
    cor = getattr(cfg, "correction", None)
    if cor is None:
        return 0.0
    return float(cor.gamma) if cor.name == "ideal" else None


def gaussian_truth(cfg):
    """(mean [d], cov [d, d]) float64 of a Gaussian truth, else None."""
    if getattr(cfg.truth, "name", None) != "gaussian":
        return None
    mean, cov = cfg.truth.params()
    return np.asarray(mean, np.float64), np.asarray(cov, np.float64)


def gaussian_setting(cfg, regimes):
    """(n, G, d, tr Sigma_0, estimator, sampling bias b) for a Gaussian model on a Gaussian truth
    under one of ``regimes``, else None."""
    if cfg.model.name != "gaussian" or cfg.loop.regime not in regimes:
        return None
    truth = gaussian_truth(cfg)
    if truth is None:
        return None
    _, cov = truth
    return (cfg.loop.n, cfg.loop.generations, cov.shape[0], float(np.trace(cov)), cfg.model.estimator,
            float(cfg.model.sampling_bias))
