"""A short plain-text summary of a results Dataset (printed by ``scl run``)."""
from __future__ import annotations

import warnings

import numpy as np
import xarray as xr


class NonFiniteWarning(UserWarning):
    """A metric became NaN or +-inf in some configurations."""


def _value(v):
    v = v.item() if hasattr(v, "item") else v
    return f"{v:g}" if isinstance(v, float) else str(v)


def nonfinite(ds: xr.Dataset) -> dict:
    """{metric: (configurations affected, total, first generation, "dim=value, ..., seed=s")} for
    every metric that is NaN or +-inf somewhere; the configuration named is one where it happens
    earliest."""
    out = {}
    for name in ds.data_vars:
        da = ds[name]
        if "generation" not in da.dims or not np.issubdtype(da.dtype, np.floating):
            continue
        bad = ~np.isfinite(da.transpose(..., "generation").values)
        per_config = bad.any(-1)
        if not per_config.any():
            continue
        first = np.where(bad.any(-1), bad.argmax(-1), np.iinfo(np.int64).max)
        idx = np.unravel_index(int(np.argmin(first)), first.shape)
        dims = [d for d in da.dims if d != "generation"]
        label = ", ".join(f"{d}={_value(da[d].values[i])}" for d, i in zip(dims, idx))
        gens = ds["generation"].values
        out[str(name)] = (int(per_config.sum()), int(per_config.size), int(gens[first[idx]]), label)
    return out


def warn_nonfinite(ds: xr.Dataset) -> dict:
    """One :class:`NonFiniteWarning` per metric that became NaN or +-inf; returns :func:`nonfinite`."""
    found = nonfinite(ds)
    for name, (k, total, g, label) in found.items():
        doc = ds[name].attrs.get("description", "")
        warnings.warn(f"metric {name} is not finite (NaN or inf) from generation {g} at {label}; "
                      f"{k} of {total} configurations affected" + (f" ({doc})" if "inf" in doc else ""),
                      NonFiniteWarning, stacklevel=2)
    return found


def theory_for(ds: xr.Dataset):
    """Closed-form predictions (scl.theory.predictions) for the config in ``ds.attrs["config"]``,
    or None: no config, ``metrics.theory: false``, or no closed form for any sweep point."""
    if "config" not in ds.attrs:
        return None
    from scl.results import config_of

    try:
        cfg = config_of(ds)
    except Exception:  # noqa: BLE001 - results of an older or foreign config: no theory
        return None
    if not getattr(cfg.metrics, "theory", True):
        return None
    from scl.theory import predictions

    try:
        return predictions(cfg)
    except Exception as e:  # noqa: BLE001 - a failing predictor must not lose a finished run's figures
        warnings.warn(f"theory: no predictions drawn ({type(e).__name__}: {e})", stacklevel=2)
        return None


def theory_lines(ds: xr.Dataset, theory, metric: str) -> list[str]:
    """At the last generation, per sweep point: predicted mean of ``metric`` against the simulated
    mean +- SE over seeds, z = (simulated - predicted) / SE, flagged when |z| > 4."""
    if theory is None or metric not in theory.data_vars:
        return []
    G = int(ds["generation"].values[-1])
    sim = ds[metric].sel(generation=G).astype("float64")
    mean, se = sim.mean("seed"), sim.std("seed", ddof=1) / np.sqrt(sim.sizes["seed"])
    dims = [d for d in sim.dims if d != "seed"]
    try:
        pred = theory[metric].sel(generation=G).sel({d: mean[d] for d in dims}).transpose(*dims)
    except (KeyError, ValueError):
        return []
    lines = [f"theory at generation {G}: {metric} predicted vs simulated mean +- SE (z-score):"]
    for idx in np.ndindex(*mean.shape):
        p, m, e = float(pred.values[idx]), float(mean.values[idx]), float(se.values[idx])
        if not np.isfinite(p):
            continue
        label = ", ".join(f"{d}={_value(mean[d].values[i])}" for d, i in zip(dims, idx)) or "all"
        z = (m - p) / e if e > 0 else (0.0 if m == p else float("inf"))
        flag = "   !! |z| > 4" if not abs(z) <= 4 else ""
        lines.append(f"  {label:<28} {p:10.4g} vs {m:10.4g} +- {e:.2g}   z = {z:+.2f}{flag}")
    return lines if len(lines) > 1 else []


def summarize(ds: xr.Dataset, metric: str | None = None, theory="auto") -> str:
    """The summary text; ``theory``: predictions to compare with at the last generation
    ("auto": :func:`theory_for` ``ds``; None: none)."""
    with np.errstate(invalid="ignore", divide="ignore"):       # inf/NaN metrics: flagged below
        return _summarize(ds, metric, theory_for(ds) if isinstance(theory, str) else theory)


def _summarize(ds: xr.Dataset, metric: str | None, theory=None) -> str:
    metric = metric or list(ds.data_vars)[0]
    dims = [d for d in ds.dims if d not in ("seed", "generation")]
    G = int(ds["generation"].values[-1])
    mid = G // 2
    lines = [f"{ds.attrs.get('name', 'run')}: {ds.sizes['seed']} seeds x {G} generations"
             + (f" x {' x '.join(f'{d} ({ds.sizes[d]})' for d in dims)}" if dims else ""),
             f"median {metric} over seeds (generation 0 -> {mid} -> {G}):"]
    da = ds[metric].median("seed")
    stacked = da.stack(point=dims) if dims else da.expand_dims(point=[0])
    for i in range(stacked.sizes["point"]):
        row = stacked.isel(point=i)
        label = ", ".join(f"{d}={row[d].item():g}" if isinstance(row[d].item(), float) else f"{d}={row[d].item()}"
                          for d in dims) or "all"
        v0, vm, vg = (float(row.sel(generation=g)) for g in (0, mid, G))
        ratio = vg / v0 if v0 not in (0.0,) and np.isfinite(v0) else float("nan")
        lines.append(f"  {label:<28} {v0:10.4g} -> {vm:10.4g} -> {vg:10.4g}   (x{ratio:.3g})")
    lines += theory_lines(ds, theory, metric)
    for name, (k, total, g, label) in nonfinite(ds).items():
        lines.append(f"non-finite {name}: {k} of {total} configurations (first at generation {g}, {label})")
    for k in ("timing_first_chunk_s", "timing_run_s"):
        if k in ds.attrs:
            lines.append(f"{k[7:]}: {ds.attrs[k]:.2f}")
    return "\n".join(lines)
