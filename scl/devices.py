"""Using every CPU core: split the host into one XLA device per core.

XLA runs a CPU program's small operations on one core. scl shards the configuration axis over
all local devices (:func:`scl.engine.shard_configs`), so splitting the host CPU into one device
per core spreads a sweep's configurations over the cores. Results agree to float32 rounding
whatever the device count. The CLI does this by default for sweeps large enough to gain
(:func:`devices_for`; ``scl run --cpu-devices N`` overrides); from Python call
:func:`use_cpu_devices` right after ``import scl``, before any JAX computation.
"""
from __future__ import annotations

import os


def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                        # not Linux
        return os.cpu_count() or 1


# Below this many configurations per device, splitting measured slower on a 2-core CPU for the
# cheap families (a KDE sweep of 30 configurations took twice as long on 2 devices). Above it, it
# measured 1.4-1.9x faster with JAX's rolled CPU threefry; with the unrolled one (scl.rng) one
# device's large fusions already use both cores and 1024 Gaussian configurations ran as fast on 1
# device as on 2 (0.49 vs 0.51 s). Neural training is heavy enough per configuration that 16
# configurations ran 1.7-2.9x faster on 2 devices than one by one.
MIN_CONFIGS_PER_DEVICE = 128
# XLA builds one device (threads, buffers) per count: 10^6 devices crashed the process. Splitting
# beyond the cores gains nothing; 256 leaves room for the largest hosts.
MAX_CPU_DEVICES = 256
MIN_NEURAL_CONFIGS_PER_DEVICE = 1


def devices_for(cfg) -> int:
    """Host devices worth using for ``cfg``: one per core, but at least MIN_CONFIGS_PER_DEVICE
    configurations (knob grid x seeds) per device (MIN_NEURAL_CONFIGS_PER_DEVICE for a neural
    family)."""
    from scl.families.neural import NeuralOptions
    from scl.grid import grid_of

    configs = grid_of(cfg).size
    per_device = MIN_NEURAL_CONFIGS_PER_DEVICE if isinstance(cfg.model, NeuralOptions) else MIN_CONFIGS_PER_DEVICE
    return max(1, min(cpu_cores(), configs // per_device))


def check_cpu_devices(count: int | None) -> None:
    """ConfigError unless ``count`` (None: automatic) is in [1, MAX_CPU_DEVICES]."""
    if count is not None and not 1 <= count <= MAX_CPU_DEVICES:
        from scl.errors import ConfigError
        raise ConfigError("--cpu-devices", f"must be in [1, {MAX_CPU_DEVICES}], got {count} "
                          f"(this machine has {cpu_cores()} cores)")


def use_cpu_devices(count: int | None = None) -> bool:
    """Split the host CPU into ``count`` devices (default: one per core). Returns False, changing
    nothing, when ``XLA_FLAGS`` already fixes the host device count or JAX has already started
    its backends (then it is too late)."""
    import jax

    check_cpu_devices(count)
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") or _backends_started():
        return False
    count = cpu_cores() if count is None else count
    jax.config.update("jax_num_cpu_devices", count)
    return True


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge
        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):          # a JAX without this hook: assume started
        return True
