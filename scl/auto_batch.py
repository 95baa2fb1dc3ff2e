"""Choosing ``run.config_batch_size`` from the compiled program's memory analysis.

When ``run.config_batch_size`` is unset and a static variant's grid may not fit at once, the
engine compiles its generation chunk for PROBE_SIZE configurations, reads XLA's
``compiled.memory_analysis()`` and scales it to the configuration count:

    temp(B)        = per_config x B                 (work buffers of B configurations at once)
    args + outputs = io_per_config x C              (states, keys, knobs, the chunk's metrics)

(one compilation; the part of temp that does not grow with B is counted as if it did, so the
estimate errs high: 1296 of 37,120 bytes for the Gaussian chunk of 64 configurations).

A run of C configurations in batches of B (``lax.map`` over slices of the vmap) is counted as

    need(B) = per_config x B + 2 x io_per_config x C

(x 2: ``lax.map`` copies its inputs and outputs into the batched layout; measured on CPU with
jax 0.10.2, the batched program's temp grows by about a fifth of io_per_config per
configuration, so this over-counts). The chosen batch is the largest power of two with
need(B) <= limit; none (one vmap) when the whole grid fits. The limit is the memory available
to the run times a safety factor: device memory x SAFETY_ACCELERATOR on a GPU/TPU, available RAM
x SAFETY_CPU on a CPU host minus the host copy of the per-generation metrics
(``scl.budget``'s result term), split evenly over the host's XLA devices.

The probe costs a compilation, so it runs only when ``scl.budget``'s cheap
estimate of the whole grid's work exceeds GATE x the limit; grids of at most PROBE_SIZE
configurations are never batched. A value set by the user is never changed. ``scl run`` prints the choice (:meth:`BatchChoice.message`).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

SAFETY_CPU = 0.5
SAFETY_ACCELERATOR = 0.75
PROBE_SIZE = 64
GATE = 0.25


def _gib(b: float) -> str:
    return f"{b / 2**30:.3g} GiB" if b >= 2**30 / 10 else f"{b / 2**20:.3g} MiB"


class BatchChoice(NamedTuple):
    """The outcome of :func:`choose_batch`: ``batch_size`` None = the whole grid in one vmap."""

    batch_size: Optional[int]
    configs: int            # C, the variant's configurations (knob points x seeds)
    per_config: float       # bytes of temp per configuration computed at once
    io_per_config: float    # bytes of arguments + outputs per configuration
    limit: float            # bytes allowed (per device)
    limit_why: str          # where the limit comes from

    def need(self, batch: int) -> float:
        """Bytes counted for the run in batches of ``batch`` configurations."""
        return self.per_config * min(batch, self.configs) + 2 * self.io_per_config * self.configs

    def message(self) -> str:
        if self.batch_size is None:
            return (f"config_batch_size: none needed ({_gib(self.need(self.configs))} for all "
                    f"{self.configs} configurations at once, limit {_gib(self.limit)})")
        b = self.batch_size
        return (f"config_batch_size {b} chosen: {_gib(self.per_config * b)} per batch of "
                f"2^{int(math.log2(b))} configurations (+ {_gib(2 * self.io_per_config * self.configs)} "
                f"inputs and outputs of all {self.configs}); all at once would need "
                f"{_gib(self.need(self.configs))}, limit {_gib(self.limit)} ({self.limit_why}; "
                f"compiled.memory_analysis, scl.auto_batch)")


def memory_limit(cfg) -> tuple[float, str]:
    """(bytes one device may use for ``cfg``'s program, where that figure comes from)."""
    import jax

    from scl.budget import available_memory, result_bytes

    devices = jax.local_devices()
    stats = None
    if devices[0].platform != "cpu":
        try:
            stats = devices[0].memory_stats()
        except Exception:           # a backend without memory statistics
            stats = None
    if stats and stats.get("bytes_limit"):
        return (stats["bytes_limit"] * SAFETY_ACCELERATOR,
                f"{SAFETY_ACCELERATOR:g} x {_gib(stats['bytes_limit'])} of {devices[0].platform} memory")
    avail = available_memory()
    if avail is None:
        return math.inf, "available memory unknown"
    results = result_bytes(cfg)
    limit = max(0.0, avail * SAFETY_CPU - results) / len(devices)
    return limit, (f"{SAFETY_CPU:g} x {_gib(avail)} available RAM - {_gib(results)} of results"
                   + (f", over {len(devices)} devices" if len(devices) > 1 else ""))


_MEASURED: dict = {}


def program_bytes(cfg, configs: int, keep_models: bool = False) -> tuple[float, float]:
    """(temp bytes, argument + output bytes) of ``cfg``'s compiled generation chunk run on
    ``configs`` configurations at once (one device), from ``memory_analysis()``; remembered per
    program structure."""
    from scl.config import structure_key
    from scl.grid import grid_of

    grid = grid_of(cfg)
    key = (structure_key(cfg), grid.lam_max, configs, keep_models)
    if key not in _MEASURED:
        _MEASURED[key] = _program_bytes(cfg, grid, configs, keep_models)
    return _MEASURED[key]


def _program_bytes(cfg, grid, configs, keep_models):
    import jax
    import jax.numpy as jnp

    from scl.engine import build_program

    program = build_program(cfg, grid.lam_max, keep_models=keep_models)
    keys, knobs = grid.inputs()
    keys, knobs = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((configs,) + a.shape[1:], a.dtype), (keys, knobs))
    states = jax.eval_shape(program.init, keys, knobs)[0]
    stats = program.chunk.lower(states, keys, knobs, jnp.int32(1)).compile().memory_analysis()
    io = stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
    return float(stats.temp_size_in_bytes), float(io)


def choose_batch(cfg, keep_models: bool = False, limit: float | None = None,
                 force: bool = False) -> Optional[BatchChoice]:
    """The batch size for one static variant ``cfg`` (see the module docstring); None when the
    user set ``run.config_batch_size`` or the cheap estimate says the grid fits by far (unless
    ``force``). ``limit``: bytes per device (default :func:`memory_limit`). ConfigError when not
    even one configuration fits."""
    from scl.budget import work_bytes
    from scl.errors import ConfigError
    from scl.grid import grid_of

    if cfg.run.config_batch_size is not None:
        return None
    why = "given"
    if limit is None:
        limit, why = memory_limit(cfg)
    C = grid_of(cfg).size
    if C <= PROBE_SIZE or (not force and work_bytes(cfg) <= GATE * limit):
        return None
    temp, io = program_bytes(cfg, PROBE_SIZE, keep_models)
    choice = BatchChoice(None, C, temp / PROBE_SIZE, io / PROBE_SIZE, limit, why)
    if choice.need(C) <= limit:
        return choice
    room = (limit - 2 * choice.io_per_config * C) / max(choice.per_config, 1e-30)
    if room < 1:
        raise ConfigError("run.config_batch_size", f"not even one configuration fits: "
                          f"{_gib(choice.need(1))} needed, limit {_gib(limit)} ({why}); make the run smaller")
    return choice._replace(batch_size=2 ** int(math.floor(math.log2(room))))
