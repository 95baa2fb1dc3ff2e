"""Labelled results: an ``xarray.Dataset`` (sweep axes x seed x generation), saved as netCDF.

Layout: dims = the swept settings (static sweeps first, then knob sweeps, each in config order,
named by the setting's last path component), then ``seed`` and ``generation``. One float32 data
variable per metric. ``attrs["config"]`` holds the full config as YAML; timings and versions too.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import xarray as xr

RESULTS_FILE = "results.nc"


def _coord(values):
    vals = list(values)
    if all(isinstance(v, (int, float, bool, str)) for v in vals):
        return np.asarray(vals)
    return np.asarray([str(v) for v in vals])


def build_dataset(cfg, results, timings: dict | None = None) -> xr.Dataset:
    """``results``: [(static coords, {metric: np [G+1, C]})] in ``cfg.static_variants()`` order."""
    from scl.grid import dim_name, grid_of

    static_axes, knob_axes = cfg.static_axes, cfg.knob_axes
    static_shape = tuple(len(v) for _, v in static_axes)
    grid = grid_of(cfg.static_variants()[0][1])          # every variant shares the knob grid
    S, G1 = cfg.seeds, cfg.loop.generations + 1
    names = list(results[0][1]) if results else []
    data = {}
    for name in names:
        per_variant = [np.moveaxis(grid.unflatten(metrics[name], axis=1), 0, -1)   # [*knob, S, G+1]
                       for _, metrics in results]
        data[name] = np.stack(per_variant).reshape(static_shape + grid.shape + (S, G1))
    dims = [dim_name(p) for p, _ in static_axes] + [dim_name(p) for p, _ in knob_axes] + ["seed", "generation"]
    coords = {dim_name(p): _coord(v) for p, v in list(static_axes) + list(knob_axes)}
    coords["seed"] = np.arange(S)
    coords["generation"] = np.arange(G1)
    ds = xr.Dataset({k: (dims, v) for k, v in data.items()}, coords=coords)
    import jax

    import scl

    ds.attrs.update({
        "config": cfg.to_yaml(),
        "name": cfg.name,
        "scl_version": scl.__version__,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "devices": len(jax.devices()),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sweep_paths": " ".join(p for p, _ in list(static_axes) + list(knob_axes)),
    })
    for k, v in (timings or {}).items():
        ds.attrs[f"timing_{k}"] = float(v)
    for name in names:
        from scl.registry import METRICS

        ds[name].attrs["description"] = METRICS[name].doc if name in METRICS else name
    return ds


def save_results(ds: xr.Dataset, path) -> Path:
    """Write atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    from scl.atomic import atomic_path

    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_results(path) -> xr.Dataset:
    """Read results saved by ``scl run`` / :func:`save_results` (a file or its output folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        from scl.errors import ConfigError

        raise ConfigError("results", f"no results at {path}")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def config_of(ds: xr.Dataset):
    """The Config a results Dataset was produced by."""
    import yaml

    from scl.config import Config

    return Config.from_dict(yaml.safe_load(ds.attrs["config"]))
