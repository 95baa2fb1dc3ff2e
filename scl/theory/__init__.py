"""Closed-form predictions of what a loop does: ``predict(cfg)`` and ``predictions(cfg)``.

Each closed form is one file here that registers a predictor with
``@register_theory(name, doc)`` (scl.registry) and one import line in scl.catalog (its ``# theory``
block). A predictor reads one sweep point ``cfg`` duck-typed (never scl.config / scl.engine) and
returns {metric: np.ndarray [G+1]}, the expected value over seeds of every metric it covers at
generations 0..G, or None when ``cfg`` is not its setting. Host-side NumPy / SciPy only.
"""
from __future__ import annotations

import numpy as np

from scl import registry


def predict(cfg) -> dict | None:
    """{metric: np.ndarray [G+1]} from the first registered predictor that covers ``cfg`` (one
    point of a sweep: every knob fixed), or None when no closed form is known. Per-source loss
    weights (``loop.real_weight``) change every mixing law, and no predictor models them yet."""
    if _unmodelled(cfg):
        return None
    for entry in registry.THEORIES.values():
        out = entry.make(cfg)
        if out is not None:
            return {k: np.asarray(v, np.float64) for k, v in out.items()}
    return None


def predictor_name(cfg) -> str | None:
    """The name of the registered predictor that ``predict(cfg)`` uses (None: no closed form)."""
    if _unmodelled(cfg):
        return None
    for name, entry in registry.THEORIES.items():
        if entry.make(cfg) is not None:
            return name
    return None


def _unmodelled(cfg) -> bool:
    """Settings no predictor accounts for: per-source loss weights."""
    return getattr(cfg.loop, "real_weight", None) is not None


def _coord(values):
    vals = list(values)
    if all(isinstance(v, (int, float, bool, str)) for v in vals):
        return np.asarray(vals)
    return np.asarray([str(v) for v in vals])


def predictions(cfg):
    """``xarray.Dataset`` of predicted expected values with the results' sweep dims (static
    sweeps, then knob sweeps, in config order; scl.results) x generation: one float64 variable
    per predicted metric that ``cfg.metrics.names`` measures, NaN at points without a closed
    form. None when no point of the sweep has one."""
    import xarray as xr

    from scl.grid import dim_name

    axes = list(cfg.static_axes) + list(cfg.knob_axes)
    shape = tuple(len(v) for _, v in axes)
    G1 = cfg.loop.generations + 1
    measured = list(cfg.metrics.names)
    found: dict = {}
    points = [p for _, variant in cfg.static_variants() for _, p in variant.knob_grid()]
    for i, point in enumerate(points):
        out = predict(point) or {}
        for name, values in out.items():
            if name in measured:
                found.setdefault(name, np.full((len(points), G1), np.nan))[i] = values
    if not found:
        return None
    dims = [dim_name(p) for p, _ in axes] + ["generation"]
    coords = {dim_name(p): _coord(v) for p, v in axes}
    coords["generation"] = np.arange(G1)
    data = {name: (dims, v.reshape(shape + (G1,))) for name, v in found.items() if name in measured}
    return xr.Dataset({k: data[k] for k in measured if k in data}, coords=coords)


__all__ = ["predict", "predictions", "predictor_name"]
