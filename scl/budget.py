"""Memory a run needs, estimated before anything is allocated (``scl run`` refuses a run that
cannot fit in one line naming the setting that makes it too big).

The estimate counts float32 values (4 bytes) and is deliberately simple; it is an upper-bound
order of magnitude, not a measurement:

    rows   = n (real rows) + m K (curation candidates, K = 1 without curation) + n + m (training set)
             + [n + G m] (accumulate regimes: the pool of fixed capacity) + 2 S (probe: model and truth)
    work   = 4 B x FACTOR x d x rows x B_c          (B_c = configurations computed at once:
                                                    run.config_batch_size, else the smaller of knob
                                                    points x seeds and AUTO_BATCH_FLOOR: an unset
                                                    batch size is chosen to fit, scl.auto_batch)
    result = 4 B x C x (G + 1) x M x 2             (C = all sweep points x seeds, M metrics; x 2: the
                                                    results are copied once when saved)
    need   = work + result

with n = loop.n, m = synthetic rows per generation, G = loop.generations, S = metrics.samples,
d = the truth's dimension (1 for category indices) and FACTOR = 4 for the intermediates of one step.
Neural families' parameters and optimiser states are not counted. Nothing here touches JAX.
"""
from __future__ import annotations

import math
import os

from scl.errors import ConfigError

FACTOR = 4
BYTES = 4
# run.config_batch_size unset: scl.auto_batch batches a grid that does not fit, so the refusal
# counts the work of at most this many configurations at once
AUTO_BATCH_FLOOR = 1024


def _sizes(cfg) -> dict:
    loop = cfg.loop
    try:
        d = int(getattr(cfg.truth, "dim", 1) or 1)
    except Exception:                                  # a truth without a plain dimension
        d = 1
    all_points = math.prod(len(v) for _, v in cfg.sweep) if cfg.sweep else 1
    knob_points = math.prod(len(v) for _, v in cfg.knob_axes) if cfg.knob_axes else 1
    cur = cfg.curation
    K = getattr(cur, "K", 1) if cur is not None else 1
    return {"n": loop.n, "m": loop.synthetic_rows, "G": loop.generations, "S": cfg.metrics.samples,
            "seeds": cfg.seeds, "points": all_points, "knob_points": knob_points, "K": K if isinstance(K, int) else 1,
            "M": max(1, len(cfg.metrics.names)), "d": d, "batch": cfg.run.config_batch_size,
            "accumulate": loop.regime.startswith("accumulate")}


def _f(x) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.inf


def _work(z: dict, batch: float) -> float:
    n, m, G, S, K = (_f(z[k]) for k in ("n", "m", "G", "S", "K"))
    rows = n + m * K + n + m + (n + G * m if z["accumulate"] else 0.0) + 2 * S
    return BYTES * FACTOR * _f(z["d"]) * rows * batch


def _result(z: dict) -> float:
    return BYTES * _f(z["points"]) * _f(z["seeds"]) * (_f(z["G"]) + 1) * _f(z["M"]) * 2


def _need(z: dict) -> float:
    per_variant = _f(z["knob_points"]) * _f(z["seeds"])
    batch = min(per_variant, _f(z["batch"]) if z["batch"] else AUTO_BATCH_FLOOR)
    return _work(z, batch) + _result(z)


def work_bytes(cfg) -> float:
    """The work term for one static variant ``cfg`` computed all at once (no batching)."""
    z = _sizes(cfg)
    return _work(z, _f(z["knob_points"]) * _f(z["seeds"]))


def result_bytes(cfg) -> float:
    """The result term: host copies of every per-generation metric of ``cfg`` (all variants)."""
    return _result(_sizes(cfg))


# the settings that may make a run too big, and the smallest value each can take
_SHRINK = {"loop.generations": {"G": 1}, "loop.n": {"n": 2, "m": 1}, "loop.synthetic_size": {"m": 1},
           "seeds": {"seeds": 1}, "metrics.samples": {"S": 2}, "curation.K": {"K": 1},
           "sweep": {"points": 1, "knob_points": 1}}


def estimate(cfg) -> tuple[float, str]:
    """(bytes the run of ``cfg`` needs, the setting that contributes most to it), the largest over
    its static variants (a swept shape setting names ``sweep.<setting>``)."""
    swept = {p for p, _ in cfg.static_axes}
    worst = (-1.0, "loop.generations")
    for _, variant in cfg.static_variants() if swept else [(None, cfg)]:
        need, blame = _estimate(variant, cfg)
        if need > worst[0]:
            worst = (need, f"sweep.{blame}" if blame in swept else blame)
    return worst


def _estimate(cfg, whole) -> tuple[float, str]:
    z = {**_sizes(cfg), "points": _sizes(whole)["points"]}
    need = _need(z)
    blame, best = "loop.generations", need
    for field, shrink in _SHRINK.items():
        smaller = _need({**z, **shrink})
        if smaller < best:
            blame, best = field, smaller
    return need, blame


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (psutil, else /proc/meminfo, else sysconf),
    or None when it cannot be told."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(b: float) -> str:
    return f"about {b / 2**30:.3g} GiB" if b < 1e30 else "more than 1e21 GiB"


def check_memory(cfg, available: int | None = None) -> float:
    """Refuse (ConfigError naming the biggest contributor) a run whose estimated need exceeds the
    available memory; returns the estimate in bytes."""
    need, blame = estimate(cfg)
    avail = available_memory() if available is None else available
    if avail is not None and not need <= avail:
        value = None
        if blame != "sweep" and not blame.startswith("sweep."):
            obj = cfg
            for part in blame.split("."):
                obj = getattr(obj, part, None)
            value = obj
        if isinstance(value, int) and abs(value) >= 10**15:
            value = f"{_f(value):.3g}"
        shown = f" = {value}" if value is not None else ""
        raise ConfigError(blame, f"the run would need {_gib(need)} of memory, {_gib(avail)} available "
                          f"(scl.budget estimate; largest contributor: {blame}{shown}); make it smaller")
    return need
