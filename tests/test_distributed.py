"""Multi-process runs (scl.distributed): 2 CPU processes on localhost, collectives over the loopback
(gloo), give bit-identical results to one process; a process killed after a checkpoint, then
``scl resume --distributed`` of both, gives the uninterrupted results."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import scl

ROOT = Path(__file__).resolve().parents[1]

# 2 knob values x 5 seeds = 10 configurations, 5 per process; an accumulating pool (mixer state)
# and kept model histories, so every kind of checkpoint item crosses processes.
CONFIG = {
    "name": "dist", "seed": 3, "seeds": 5,
    "truth": {"kind": "gaussian", "dim": 2},
    "model": {"family": "gaussian", "sampling_bias": 1.0},
    "loop": {"generations": 12, "n": 12, "regime": "accumulate_subsample", "real_fraction": 0.25},
    "metrics": {"names": ["mean_sqerr", "trace_ratio"]},
    "sweep": {"model.sampling_bias": [1.0, 0.8]},
    "run": {"chunk_size": 3, "progress": False},
    "checkpoint": {"keep_after_finish": True},
}

# Process 1 SIGKILLs itself right after its KILL_AFTER_SAVES-th checkpoint save returned (orbax
# waits for the previous save before starting one, so the one before is committed by then).
WORKER = """
import os, signal, sys
from scl import checkpoint, cli
after = int(os.environ.get("KILL_AFTER_SAVES", "0"))
if after and os.environ["SCL_PROCESS_ID"] == "1":
    original, calls = checkpoint.VariantCheckpoint.save, [0]
    def save(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == after:
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoint.VariantCheckpoint.save = save
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module", autouse=True)
def compile_cache(jax_compile_cache):
    """Share compiled programs between the processes of every run of this module."""
    return jax_compile_cache


@pytest.fixture(scope="module")
def reference():
    """One process, one device: the uninterrupted results."""
    return scl.simulate(scl.load_config(CONFIG))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start_both(tmp_path, cache, args, kill_after=0, script=None):
    """Start the 2 processes of one run: ``python WORKER <args> --distributed --no-progress``, or
    ``python -c script <args>`` ("{pid}" in an argument: the process id)."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    port = _free_port()
    procs = []
    for pid in (0, 1):
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_COMPILATION_CACHE_DIR=cache,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
                   SCL_COORDINATOR=f"localhost:{port}", SCL_NUM_PROCESSES="2", SCL_PROCESS_ID=str(pid),
                   KILL_AFTER_SAVES=str(kill_after))
        command = ["-c", script, *(str(a).format(pid=pid) for a in args)] if script else \
            [str(worker), *args, "--distributed", "--no-progress"]
        procs.append(subprocess.Popen([sys.executable, *command],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _finish_both(procs, timeout=240):
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        out.append((p.returncode, stdout, stderr))
    return out


def _equal(a, b):
    assert list(a.data_vars) == list(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values)   # bit-identical, NaN == NaN


def _cfg_file(tmp_path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_two_processes_give_the_results_of_one(tmp_path, reference, compile_cache):
    """From Python: ``scl.simulate(cfg, out_dir=..., distributed=True)`` in both processes, one
    chunk (results do not depend on the chunk size); each returns the whole Dataset."""
    out = tmp_path / "out"
    script = ("import sys, scl; ds = scl.simulate(sys.argv[1], ['run.chunk_size=12'], out_dir=sys.argv[2], "
              "distributed=True); scl.save_results(ds, sys.argv[3])")
    runs = _finish_both(_start_both(tmp_path, compile_cache, [_cfg_file(tmp_path), out, tmp_path / "ds{pid}"],
                                    script=script))
    assert [r[0] for r in runs] == [0, 0], runs[0][2][-2000:] + runs[1][2][-2000:]
    for pid in (0, 1):
        _equal(scl.load_results(tmp_path / f"ds{pid}"), reference)
    state = out / "checkpoints" / "variant_000" / "state"
    assert sorted(p.name for p in state.iterdir()) == ["1", "13"]           # gen 0, then the chunk
    assert not [p for p in out.rglob("*") if ".scl-tmp-" in p.name or "orbax-checkpoint-tmp" in p.name]


@pytest.mark.slow
def test_killed_process_then_resume_of_both_gives_the_uninterrupted_results(tmp_path, reference, compile_cache):
    cfg_path = _cfg_file(tmp_path)
    out = tmp_path / "out"
    procs = _start_both(tmp_path, compile_cache, ["run", str(cfg_path), "-o", str(out)], kill_after=3)
    t0 = time.time()
    while procs[1].poll() is None and time.time() - t0 < 240:
        time.sleep(0.05)
    assert procs[1].returncode == -signal.SIGKILL, procs[1].stderr.read()[-2000:]
    procs[0].send_signal(signal.SIGKILL)      # what the scheduler does to the job's other processes
    _finish_both(procs)
    assert not (out / "results.nc").exists()
    state = out / "checkpoints" / "variant_000" / "state"
    committed = sorted(int(p.name) for p in state.iterdir() if p.name.isdigit())
    assert 4 in committed and max(committed) <= CONFIG["loop"]["generations"], committed   # killed mid-run
    history = out / "checkpoints" / "variant_000" / "history"
    before = {p.name: p.stat().st_mtime_ns for p in history.iterdir() if p.name in ("1", "4")}
    # `scl run` again without --resume: both processes refuse with process 0's line, exit 2
    refused = _finish_both(_start_both(tmp_path, compile_cache, ["run", str(cfg_path), "-o", str(out)]))
    assert [r[0] for r in refused] == [2, 2]
    assert all("pass --resume to continue" in r[2] for r in refused), refused
    (rc0, _, err0), (rc1, _, err1) = _finish_both(
        _start_both(tmp_path, compile_cache, ["resume", str(out)]))
    assert (rc0, rc1) == (0, 0), err0[-2000:] + err1[-2000:]
    _equal(scl.load_results(out), reference)
    assert {p: (history / p).stat().st_mtime_ns for p in before} == before     # resumed, not restarted
    # process 0 refuses a run into a folder holding results; process 1 stops with its line (kv store)
    refused = _finish_both(_start_both(tmp_path, compile_cache, ["run", str(cfg_path), "-o", str(out)]))
    assert [r[0] for r in refused] == [2, 2]
    lines = [r[2].strip().splitlines()[-1] for r in refused]
    assert lines[0] == lines[1] and "already holds results" in lines[0], lines


@pytest.mark.slow
def test_preemption_notice_to_one_process_stops_both_after_the_same_chunk(tmp_path, compile_cache):
    """SIGTERM (scancel, TPU preemption) to process 0 only: JAX's preemption sync point, agreed
    over both processes, stops both after one chunk, checkpoint saved, exit status 130."""
    out = tmp_path / "out"
    procs = _start_both(tmp_path, compile_cache, ["run", str(_cfg_file(tmp_path)), "-o", str(out),
                                                  "--set", "loop.generations=90"])
    state = out / "checkpoints" / "variant_000" / "state"
    t0 = time.time()
    while not (state / "4").is_dir() and time.time() - t0 < 240:
        time.sleep(0.05)
    procs[0].send_signal(signal.SIGTERM)
    (rc0, _, err0), (rc1, _, err1) = _finish_both(procs)
    assert (rc0, rc1) == (130, 130), err0[-2000:] + err1[-2000:]
    stopped = [next(line for line in err.splitlines() if "stopped after" in line) for err in (err0, err1)]
    assert stopped[0] == stopped[1] and "scl resume" in stopped[0] and "--distributed" in stopped[0]
    done = int(stopped[0].split("stopped after ")[1].split()[0])
    assert 3 <= done < 90 and (state / str(done + 1)).is_dir()
