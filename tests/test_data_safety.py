"""Never lose or mix up a user's data: one writer per folder, output names kept under runs/,
damaged results detected and rebuilt, disk full / read-only reported in one line without leftovers,
--overwrite keeping config and results together, non-finite metrics flagged, group-readable files."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from scl import cli

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "name": "safety", "seed": 1, "seeds": 2,
    "truth": {"kind": "gaussian", "dim": 2},
    "model": {"family": "gaussian"},
    "loop": {"generations": 4, "n": 10},
    "metrics": {"names": ["mean_sqerr", "logdet_ratio"]},
    "sweep": {"model.sampling_bias": [1.0, 0.5]},
    "run": {"chunk_size": 2, "progress": False},
}


@pytest.fixture(scope="module", autouse=True)
def compile_cache(jax_compile_cache):
    """Share compiled programs between this process and the `scl` subprocesses it starts."""
    return jax_compile_cache


def _write_config(folder: Path, **top) -> Path:
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **top}))
    return path


def _cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("scl: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run: (folder, its results.nc bytes)."""
    base = tmp_path_factory.mktemp("finished")
    out = base / "out"
    assert cli.main(["run", str(_write_config(base)), "-o", str(out), "--no-progress"]) == 0
    return out, (out / "results.nc").read_bytes()


@pytest.fixture
def copy(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished[0], out)
    return out


# ------------------------------------------------------------------------------ lock

HOLD = ("import sys, time; sys.path.insert(0, sys.argv[2]); from scl.lock import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(ROOT)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_naming_the_holder_and_a_killed_holder_does_not_block(copy, capsys):
    (copy / "results.nc").unlink()
    proc = _holder(copy)
    try:
        for argv in (["resume", copy], ["run", _write_config(copy.parent), "-o", copy, "--resume"]):
            code, _, err = _cli(argv, capsys)
            line = _one_line(err)
            assert code == 2 and "in use" in line and f"pid {proc.pid}" in line, line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (copy / ".scl.lock").exists()                 # stale lock file left by the killed holder
    code, out, err = _cli(["resume", copy, "--no-progress"], capsys)
    assert code == 0 and (copy / "results.nc").exists(), err


def test_lock_is_reentrant_and_released(tmp_path):
    from scl.errors import ConfigError
    from scl.lock import folder_lock

    with folder_lock(tmp_path):
        with folder_lock(tmp_path):
            pass
    proc = _holder(tmp_path)
    try:
        with pytest.raises(ConfigError, match=f"pid {proc.pid}"):
            with folder_lock(tmp_path):
                pass
    finally:
        proc.kill()
        proc.wait()
    with folder_lock(tmp_path):
        pass


# ------------------------------------------------------------------------------ output names

@pytest.mark.parametrize("name", ["../../etc", "..", "a/../../b", "/tmp/abs_scl", "", " "])
def test_default_output_folder_stays_under_runs(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(["run", _write_config(tmp_path, name=name)], capsys)
    assert code == 2 and _one_line(err).startswith("scl: error: name: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


# ------------------------------------------------------------------------------ damaged results

def _truncate(p):
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _garbage(p):
    p.write_bytes(b"\x00garbage" * 100)


def _flip(p):
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0xFF
    p.write_bytes(bytes(b))


@pytest.mark.parametrize("damage", [_truncate, _garbage, _flip])
def test_damaged_results_refused_in_one_line_and_rebuilt_by_resume(damage, copy, finished, capsys):
    damage(copy / "results.nc")
    for cmd in (["show", copy], ["plot", copy]):
        code, _, err = _cli(cmd, capsys)
        assert code == 2 and "damaged" in _one_line(err)
    code, out, err = _cli(["resume", copy, "--no-progress"], capsys)
    assert code == 0 and "rebuilding" in err and "nothing to resume" not in out
    from scl.results import load_results

    new, old = load_results(copy), load_results(finished[0])
    for name in old.data_vars:
        np.testing.assert_array_equal(new[name].values, old[name].values)
    code, out, _ = _cli(["resume", copy], capsys)
    assert code == 0 and "nothing to resume" in out


def test_results_without_checksum_still_read(copy, capsys):
    (copy / "results.nc.sha256").unlink()
    assert _cli(["show", copy], capsys)[0] == 0


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"a: [unclosed", b"- just\n- a list\n",
                                     b"loop: {generations: banana}\n"])
def test_garbage_checkpoint_config_is_one_line(content, copy, capsys):
    (copy / "results.nc").unlink()
    (copy / "checkpoints" / "config.yaml").write_bytes(content)
    code, _, err = _cli(["resume", copy], capsys)
    assert code == 2 and "checkpoints/config.yaml" in _one_line(err)
    code, _, err = _cli(["run", _write_config(copy.parent), "-o", copy, "--resume"], capsys)
    assert code == 2 and _one_line(err)          # damaged, or a config that differs from this one


# ------------------------------------------------------------------------------ disk full / read-only

def _tmp_leftovers(folder: Path):
    return [p for p in folder.rglob("*") if ".scl-tmp-" in p.name or "orbax-checkpoint-tmp" in p.name]


@pytest.mark.parametrize("code_", [errno.ENOSPC, errno.EROFS])
def test_failed_overwrite_keeps_config_and_results_together(code_, copy, monkeypatch, capsys):
    import xarray as xr

    before = {f: (copy / f).read_bytes() for f in ("config.yaml", "results.nc", "results.nc.sha256")}

    def fail(self, path, *a, **k):
        Path(path).write_bytes(b"\x89HDF partial")
        raise OSError(code_, os.strerror(code_))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail)
    code, _, err = _cli(["run", _write_config(copy.parent, seed=2), "-o", copy, "--overwrite"], capsys)
    assert code == 1 and os.strerror(code_) in _one_line(err) and "results.nc" in err
    assert {f: (copy / f).read_bytes() for f in before} == before
    assert _tmp_leftovers(copy) == []


@pytest.mark.parametrize("message", ["RESOURCE_EXHAUSTED: Failed to write 10 bytes: No space left on device "
                                     "[os_error_code='28']", "PERMISSION_DENIED: Read-only file system"])
def test_checkpoint_write_failure_is_one_line_without_orbax_leftovers(message, tmp_path, monkeypatch, capsys):
    import orbax.checkpoint as ocp

    real = ocp.CheckpointManager.save
    calls = []

    def failing(self, step, *a, **k):
        calls.append(step)
        if len(calls) >= 3:
            (Path(self.directory) / f"{step}.orbax-checkpoint-tmp-123").mkdir()
            raise ValueError(message)
        return real(self, step, *a, **k)

    monkeypatch.setattr(ocp.CheckpointManager, "save", failing)
    out = tmp_path / "out"
    code, _, err = _cli(["run", _write_config(tmp_path), "-o", out], capsys)
    line = _one_line(err)
    assert code == 1 and "checkpoints" in line and ("No space" in line or "Read-only" in line), line
    assert _tmp_leftovers(out) == []


def test_overwrite_removes_stale_figures(copy, capsys):
    for name in ("final_old_metric.png", "samples_gen3.png", "mode_mass.png"):
        (copy / name).write_bytes(b"old")
    (copy / "notes.txt").write_text("mine")
    code, out, err = _cli(["run", _write_config(copy.parent, seed=5), "-o", copy, "--overwrite"], capsys)
    assert code == 0, err
    names = {p.name for p in copy.iterdir()}
    assert not {"final_old_metric.png", "samples_gen3.png", "mode_mass.png"} & names
    assert {"phase_diagram.png", "curves.png", "notes.txt"} <= names
    assert yaml.safe_load((copy / "config.yaml").read_text())["seed"] == 5


def test_overwrite_that_cannot_delete_checkpoints_says_so(copy, monkeypatch, capsys):
    import scl.checkpoint as ck

    def stuck(path, onerror=None, **k):
        onerror(os.unlink, str(Path(path) / "variant_000"), (PermissionError, PermissionError(13, "Permission denied"), None))

    monkeypatch.setattr(ck.shutil, "rmtree", stuck)
    code, _, err = _cli(["run", _write_config(copy.parent), "-o", copy, "--overwrite"], capsys)
    line = _one_line(err)
    assert code == 2 and "could not delete" in line and "unfinished" not in line


def test_temporary_files_of_a_killed_writer_are_removed(copy, capsys):
    (copy / "results.nc").unlink()
    stale = [copy / ".results.nc.scl-tmp-abc123.nc", copy / ".summary.txt.scl-tmp-x.txt"]
    for p in stale:
        p.write_bytes(b"")
    assert _cli(["resume", copy, "--no-progress"], capsys)[0] == 0
    assert _tmp_leftovers(copy) == []


# ------------------------------------------------------------------------------ non-finite values

def test_non_finite_metric_warned_once_per_metric_and_counted(finished):
    from scl.results import load_results
    from scl.summary import NonFiniteWarning, summarize, warn_nonfinite

    ds = load_results(finished[0])
    ds["logdet_ratio"][{"sampling_bias": 1, "seed": 1, "generation": slice(3, None)}] = -np.inf
    ds["logdet_ratio"][{"sampling_bias": 0, "seed": 0, "generation": slice(4, None)}] = np.nan
    ds["mean_sqerr"][{"sampling_bias": 0, "seed": 1, "generation": 2}] = np.nan
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        warn_nonfinite(ds)
    msgs = [str(w.message) for w in got if issubclass(w.category, NonFiniteWarning)]
    assert len(msgs) == 2
    ld = next(m for m in msgs if "logdet_ratio" in m)
    assert "generation 3" in ld and "sampling_bias=0.5, seed=1" in ld and "2 of 4 configurations" in ld
    ms = next(m for m in msgs if "mean_sqerr" in m)
    assert "generation 2" in ms and "sampling_bias=1, seed=1" in ms and "1 of 4" in ms
    text = summarize(ds)
    assert "non-finite logdet_ratio: 2 of 4 configurations" in text and "non-finite mean_sqerr: 1 of 4" in text


def test_cli_prints_non_finite_warning_in_one_line(copy, monkeypatch, capsys):
    sim = sys.modules["scl.simulate"]

    real = sim.build_dataset

    def poisoned(cfg, results, timings=None):
        ds = real(cfg, results, timings)
        ds["mean_sqerr"][{"sampling_bias": 1, "seed": 0, "generation": slice(2, None)}] = np.inf
        return ds

    monkeypatch.setattr(sim, "build_dataset", poisoned)
    (copy / "results.nc").unlink()
    code, out, err = _cli(["resume", copy, "--no-progress"], capsys)
    assert code == 0
    warn = [ln for ln in err.splitlines() if "warning" in ln]
    assert warn == [w for w in warn if w.startswith("scl: warning: metric mean_sqerr")] and len(warn) == 1
    assert "non-finite mean_sqerr: 1 of 4" in out


def test_logdet_ratio_doc_says_minus_inf_when_collapsed():
    from scl.registry import METRICS

    assert "-inf" in METRICS["logdet_ratio"].doc


# ------------------------------------------------------------------------------ file modes

def test_written_files_have_the_umask_mode(finished):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("results.nc", "results.nc.sha256", "config.yaml", "summary.txt", "curves.png", "phase_diagram.png"):
        assert (finished[0] / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_applies_umask(umask, tmp_path):
    from scl.atomic import write_text

    old = os.umask(umask)
    try:
        write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask
