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
    return label_variables(ds)


def metric_attrs(name: str) -> dict:
    """CF-style attributes of the metric variable ``name``: ``long_name``, ``units`` ("1" for a pure
    number, "count", "nats"; scl's truths are dimensionless, so distances and squared distances
    are "1") and ``description``, from its ``register_metric`` entry; ``mode_mass_i`` and
    ``class_share_i`` take ``mode_mass``'s and ``class_share``'s. An unregistered name gets itself as long_name and no units."""
    from scl.registry import METRICS

    entry, mode = METRICS.get(name), None
    head, _, tail = name.rpartition("_")
    if entry is None and head in ("mode_mass", "class_share") and tail.isdigit():
        entry, mode = METRICS.get(head), int(tail)
    if entry is None:
        return {"long_name": name, "description": name}
    long_name = entry.traits.get("long_name") or name
    attrs = {"long_name": f"{long_name} {mode}" if mode is not None else long_name,
             "description": entry.doc or name}
    if entry.traits.get("units"):
        attrs["units"] = entry.traits["units"]
    return attrs


def label_variables(ds: xr.Dataset) -> xr.Dataset:
    """Give every data variable the :func:`metric_attrs` it lacks (in place; also for results
    saved by an scl that wrote none); returns ``ds``."""
    for name in ds.data_vars:
        for key, value in metric_attrs(str(name)).items():
            ds[name].attrs.setdefault(key, value)
    return ds


CHECKSUM_SUFFIX = ".sha256"


def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksum_path(path) -> Path:
    """``results.nc.sha256`` beside ``results.nc`` (``sha256sum -c`` format)."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def save_results(ds: xr.Dataset, path) -> Path:
    """Write atomically (temporary file in the same folder, then rename), with its SHA-256 in
    ``results.nc.sha256``. The checksum is written first: a run killed between the two renames
    leaves a mismatch (reported as damaged, rebuilt by ``scl resume``), never a silent one."""
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    from scl.atomic import atomic_path, write_text

    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
        write_text(checksum_path(path), f"{_sha256(tmp)}  {path.name}\n")
    return path


def _results_file(path) -> Path:
    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


def damage(path) -> str | None:
    """Why the results file ``path`` (or its folder's) cannot be trusted, or None if it is intact.

    With a ``.sha256`` beside it the file's SHA-256 must match; without one (results written by
    an older scl) it must open as netCDF."""
    path = _results_file(path)
    sidecar = checksum_path(path)
    try:
        if sidecar.exists():
            expected = sidecar.read_text().split()[0] if sidecar.read_text().split() else ""
            if _sha256(path) != expected:
                return f"checksum mismatch with {sidecar.name} (truncated or overwritten)"
            return None
        with xr.open_dataset(path, engine="h5netcdf"):
            return None
    except Exception as e:  # noqa: BLE001 - any failure to read is damage
        return f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"


def load_results(path) -> xr.Dataset:
    """Read results saved by ``scl run`` / :func:`save_results` (a file or its output folder).

    A missing, truncated or garbage file is one :class:`scl.errors.ConfigError`."""
    from scl.errors import ConfigError

    path = _results_file(path)
    if not path.exists():
        raise ConfigError("results", f"no results at {path}")
    why = damage(path)
    if why is None:
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                return label_variables(ds.load())
        except Exception as e:  # noqa: BLE001
            why = f"unreadable ({type(e).__name__})"
    raise ConfigError("results", f"{path} is damaged: {why}; rebuild it from the checkpoints with: "
                      f"scl resume {path.parent}")


def config_of(ds: xr.Dataset):
    """The Config a results Dataset was produced by."""
    import yaml

    from scl.config import Config

    return Config.from_dict(yaml.safe_load(ds.attrs["config"]))
