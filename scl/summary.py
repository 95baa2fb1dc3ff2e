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


def summarize(ds: xr.Dataset, metric: str | None = None) -> str:
    with np.errstate(invalid="ignore", divide="ignore"):       # inf/NaN metrics: flagged below
        return _summarize(ds, metric)


def _summarize(ds: xr.Dataset, metric: str | None) -> str:
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
    for name, (k, total, g, label) in nonfinite(ds).items():
        lines.append(f"non-finite {name}: {k} of {total} configurations (first at generation {g}, {label})")
    for k in ("timing_first_chunk_s", "timing_run_s"):
        if k in ds.attrs:
            lines.append(f"{k[7:]}: {ds.attrs[k]:.2f}")
    return "\n".join(lines)
