"""A short plain-text summary of a results Dataset (printed by ``scl run``)."""
from __future__ import annotations

import numpy as np
import xarray as xr


def summarize(ds: xr.Dataset, metric: str | None = None) -> str:
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
    for k in ("timing_first_chunk_s", "timing_run_s"):
        if k in ds.attrs:
            lines.append(f"{k[7:]}: {ds.attrs[k]:.2f}")
    return "\n".join(lines)
