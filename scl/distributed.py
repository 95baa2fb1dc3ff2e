"""Many processes, one run: JAX's distributed runtime (``scl run --distributed``).

Every process runs the same program on its own devices; the configuration axis is sharded over
the global mesh of every process's devices (:func:`scl.engine.shard_configs`). Each process builds
the same host inputs (root keys, knobs [C]) and puts its own slice on its devices; metrics (and the
loop state, for checkpoints) are gathered back to every host after each chunk. Process 0 alone
holds the output folder's lock, prepares the folder, writes ``checkpoints/config.yaml``, the
results, figures and summary; every process calls orbax's save, which coordinates the processes
(barriers in JAX's coordination service) and writes each array once.

:func:`initialize` must run before JAX computes anything. Where it finds its peers:

1. explicit settings: arguments, else ``SCL_COORDINATOR`` (``host:port`` of process 0; JAX's own
   ``JAX_COORDINATOR_ADDRESS`` too), ``SCL_NUM_PROCESSES`` / ``JAX_NUM_PROCESSES`` and
   ``SCL_PROCESS_ID`` / ``JAX_PROCESS_ID``;
2. otherwise JAX's auto-detection: SLURM (``srun``), Open MPI (``mpirun``), Cloud TPU pods,
   Kubernetes.
On CPU the processes talk over gloo (TCP).
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable

from scl.errors import ConfigError

COORDINATOR_VARS = ("SCL_COORDINATOR", "JAX_COORDINATOR_ADDRESS")
NUM_PROCESSES_VARS = ("SCL_NUM_PROCESSES", "JAX_NUM_PROCESSES")
PROCESS_ID_VARS = ("SCL_PROCESS_ID", "JAX_PROCESS_ID")
# How long a process waits for process 0 to prepare the folder (seconds): removing an old run's
# checkpoints with --overwrite may take a while on a network file system.
WAIT_FOR_PRIMARY_S = 600

_calls = {"n": 0}                  # on_primary calls so far (the same sequence on every process)


def _env(names, kind=str):
    for name in names:
        text = os.environ.get(name)
        if text not in (None, ""):
            try:
                return kind(text)
            except ValueError:
                raise ConfigError(name, f"must be an integer, got {text!r}") from None
    return None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: int = 300) -> tuple[int, int]:
    """Join the distributed run (idempotent). Returns (process id, process count).

    Unset arguments come from the environment (see the module docstring), then from JAX's
    auto-detection of SLURM, Open MPI, Cloud TPU and Kubernetes. One ConfigError when the peers
    cannot be found or JAX has already started computing."""
    import jax

    from jax._src import distributed as jax_distributed

    if jax_distributed.global_state.client is not None:
        return jax.process_index(), jax.process_count()
    coordinator = coordinator or _env(COORDINATOR_VARS)
    num_processes = num_processes if num_processes is not None else _env(NUM_PROCESSES_VARS, int)
    process_id = process_id if process_id is not None else _env(PROCESS_ID_VARS, int)
    from scl.devices import _backends_started

    if _backends_started():
        raise ConfigError("--distributed", "JAX has already computed something in this process; call "
                          "scl.distributed.initialize() right after import scl, before any JAX work")
    with contextlib.suppress(Exception):         # gloo is the default in recent JAX; older ones need it
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id, initialization_timeout=timeout_s)
    except (ValueError, TypeError, RuntimeError) as e:
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ConfigError("--distributed", f"could not join the distributed run ({first}); set "
                          "SCL_COORDINATOR=host:port, SCL_NUM_PROCESSES and SCL_PROCESS_ID, or start "
                          "the processes with srun / mpirun / on a TPU pod") from None
    return jax.process_index(), jax.process_count()


def process_count() -> int:
    import jax

    return jax.process_count()


def is_multiprocess() -> bool:
    """True in a run of several processes (after :func:`initialize`)."""
    from jax._src import distributed as jax_distributed

    return jax_distributed.global_state.client is not None and process_count() > 1


def is_primary() -> bool:
    """Process 0 (also: any single-process run) writes results, figures, summary and config."""
    if not is_multiprocess():
        return True
    import jax

    return jax.process_index() == 0


def to_host(tree):
    """A pytree of (possibly sharded over every process) arrays as numpy arrays, whole, on every
    host; ``None`` stays ``None``."""
    import jax
    import numpy as np

    if tree is None:
        return None
    if not is_multiprocess():
        return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def barrier(name: str) -> None:
    """Wait until every process reaches this point (no-op in one process)."""
    if is_multiprocess():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"scl:{name}")


def on_primary(name: str, fn: Callable):
    """Run ``fn()`` on process 0 only and make every process share its outcome: the others wait
    for it and raise the same ConfigError / OSError (so none goes on alone, none hangs). Returns
    ``fn()``'s value on process 0; elsewhere the same value if it is a string, else None. In one
    process: just ``fn()``."""
    if not is_multiprocess():
        return fn()
    from jax._src import distributed as jax_distributed

    client = jax_distributed.global_state.client
    _calls["n"] += 1
    key = f"scl/on_primary/{_calls['n']}/{name}"
    if is_primary():
        try:
            result = fn()
        except ConfigError as e:
            client.key_value_set(key, f"config\t{e.field}\t{e.message}")
            raise
        except OSError as e:
            client.key_value_set(key, f"os\t{e.errno or 0}\t{e.strerror or e}\t{e.filename or ''}")
            raise
        except BaseException as e:
            client.key_value_set(key, f"other\t{type(e).__name__}: {str(e)[:300]}")
            raise
        client.key_value_set(key, "ok\t" + result if isinstance(result, str) else "ok")
        return result
    status = client.blocking_key_value_get(key, WAIT_FOR_PRIMARY_S * 1000)
    kind, _, rest = status.partition("\t")
    if kind == "config":
        field, _, message = rest.partition("\t")
        raise ConfigError(field, message)
    if kind == "os":
        code, strerror, filename = (rest.split("\t") + ["", "", ""])[:3]
        raise OSError(int(code), strerror, filename or None)
    if kind == "other":
        raise RuntimeError(f"process 0 failed while preparing ({name}): {rest}")
    return rest if "\t" in status else None


_saves = {"n": 0}                  # stop_requested calls so far (one per chunk, on every process)


def stop_requested(requested: bool) -> bool:
    """Whether the run stops after this chunk: ``requested`` (Ctrl-C on this process) on any
    process, or a preemption notice (SIGTERM, e.g. ``scancel`` or a TPU preemption, caught by JAX's
    preemption sync manager) on any process. Every process calls it once per chunk and gets the
    same answer, so all stop after the same chunk. In one process: ``requested``."""
    if not is_multiprocess():
        return requested
    import numpy as np
    from jax.experimental import multihost_utils

    _saves["n"] += 1
    try:
        preempted = multihost_utils.reached_preemption_sync_point(_saves["n"])
    except Exception:  # noqa: BLE001 - no preemption sync manager in this runtime
        preempted = False
    flags = multihost_utils.process_allgather(np.array([requested or preempted], np.bool_))
    return bool(np.asarray(flags).any())
