"""Checkpoints: bit-identical resume after SIGKILL / Ctrl-C, chunk-size independence, refusals,
corrupt checkpoints, reading generations back, regenerated figures, atomic files."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

import scl
from scl import cli
from scl.checkpoint import CheckpointWarning, RunCheckpoint, load_generation
from scl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# Two static variants (different mixer states: none / an accumulating pool read by a keyed
# subsample) x two knob values x 3 seeds; long and finely chunked so a kill lands mid-sweep.
CONFIG = {
    "name": "ckpt", "seed": 3, "seeds": 3,
    "truth": {"kind": "gaussian", "dim": 2},
    "model": {"family": "gaussian", "sampling_bias": 1.0},
    "loop": {"generations": 48, "n": 12, "regime": "fresh", "real_fraction": 0.25},
    "metrics": {"names": ["mean_sqerr", "trace_ratio"]},
    "sweep": {"loop.regime": ["fresh", "accumulate_subsample"], "model.sampling_bias": [1.0, 0.8]},
    "run": {"chunk_size": 3, "progress": False},
    "checkpoint": {"keep_after_finish": True},    # the tests look into the checkpoints of finished runs
}


@pytest.fixture(scope="module", autouse=True)
def compile_cache(jax_compile_cache):
    """Share compiled programs between this process and the `scl` subprocesses it starts."""
    return jax_compile_cache


def _cfg(**changes):
    cfg = scl.load_config(CONFIG)
    for k, v in changes.items():
        cfg = cfg.set(k.replace("__", "."), v)
    return cfg


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (checkpointing into its own folder)."""
    out = tmp_path_factory.mktemp("reference")
    return scl.simulate(_cfg(), out_dir=out), out


def _equal(a, b):
    assert list(a.data_vars) == list(b.data_vars)
    for v in a.data_vars:
        assert a[v].dims == b[v].dims
        np.testing.assert_array_equal(a[v].values, b[v].values)   # bit for bit (NaN == NaN)
        assert not np.isnan(a[v].values).any()


def _start(tmp_path, cache, *extra):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_COMPILATION_CACHE_DIR=cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    proc = subprocess.Popen([sys.executable, "-m", "scl.cli", "run", str(cfg_path), "-o", str(out), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, out


def _wait_for_step(proc, folder: Path, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {folder} appeared: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no checkpoint in {folder} after {timeout}s")


def _steps(folder: Path):
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def test_sigkill_mid_sweep_then_resume_is_bit_identical(tmp_path, reference, compile_cache):
    ref, _ = reference
    proc, out = _start(tmp_path, compile_cache, "--no-progress")
    second = out / "checkpoints" / "variant_001" / "state"
    _wait_for_step(proc, second)          # first variant finished, second one under way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.nc").exists()
    assert max(_steps(second)) <= CONFIG["loop"]["generations"]          # killed mid-sweep
    first = out / "checkpoints" / "variant_000" / "history"
    before = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    # `scl run` into the folder again: says it holds an unfinished run, asks for --resume
    assert cli.main(["run", str(tmp_path / "cfg.yaml"), "-o", str(out), "--no-progress"]) == 2
    assert cli.main(["resume", str(out), "--no-progress"]) == 0
    _equal(scl.load_results(out), ref)
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == before   # finished variant skipped


def test_ctrl_c_stops_after_a_chunk_with_a_checkpoint_and_resumes(tmp_path, reference, compile_cache, capsys):
    ref, _ = reference
    proc, out = _start(tmp_path, compile_cache, "--set", "run.progress=true")   # with the bar
    _wait_for_step(proc, out / "checkpoints" / "variant_000" / "state")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"resume with: scl resume {out}" in err
    assert f"/{2 * CONFIG['loop']['generations']} gen" in err and "compiling" in err   # progress bar
    assert cli.main(["run", str(tmp_path / "cfg.yaml"), "-o", str(out), "--resume", "--no-progress"]) == 0
    _equal(scl.load_results(out), ref)


def test_results_do_not_depend_on_chunk_size_or_checkpointing(tmp_path):
    cfg = _cfg(loop__generations=13, sweep={"model.sampling_bias": [1.0, 0.8]}, loop__regime="accumulate_subsample",
               metrics__names=["mean_sqerr"])
    plain = scl.simulate(cfg.set("run.chunk_size", 13))                     # one chunk, no checkpoints
    # checkpointed in chunks of 3, interrupted after the first chunk, resumed in chunks of 5
    ckpt = RunCheckpoint(tmp_path / "b", cfg.set("run.chunk_size", 3))

    def stop(*_):
        raise KeyboardInterrupt

    from scl.simulate import run_variant

    with pytest.raises(KeyboardInterrupt):
        run_variant(cfg.set("run.chunk_size", 3), on_chunk=stop, checkpoint=ckpt.variants[0])
    ckpt.variants[0].close()
    assert _steps(tmp_path / "b" / "checkpoints" / "variant_000" / "state") == [1, 4]
    resumed = scl.simulate(cfg.set("run.chunk_size", 5).set("checkpoint.stride", 3), out_dir=tmp_path / "b",
                           resume=True)
    _equal(plain, resumed)
    # generations 0-3 were kept with stride 1, the rest with stride 3
    with pytest.raises(ConfigError, match="generation 7 was not kept .*stride = 3"):
        load_generation(tmp_path / "b", generation=7)
    assert [load_generation(tmp_path / "b", generation=g)[0].generation for g in (2, 3, 6, 12)] == [2, 3, 6, 12]


def test_other_config_is_refused_naming_the_difference(reference):
    _, out = reference
    with pytest.raises(ConfigError) as e:
        RunCheckpoint(out, _cfg(loop__n=13), resume=True)
    assert str(e.value).count("\n") == 0 and "loop.n: 12 there, 13 here" in str(e.value)
    with pytest.raises(ConfigError, match=r"sweep.model.sampling_bias: \[1.0, 0.8\] there, \[1.0\] here"):
        RunCheckpoint(out, _cfg(sweep={"loop.regime": ["fresh", "accumulate_subsample"],
                                       "model.sampling_bias": [1.0]}), resume=True)
    with pytest.raises(ConfigError, match="^resume: .*pass --resume"):
        RunCheckpoint(out, _cfg(), resume=False)
    RunCheckpoint(out, _cfg(run__chunk_size=9, checkpoint__keep=5), resume=True)   # free settings


def _corrupt(step_dir: Path):
    for f in step_dir.rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and f.name != "_CHECKPOINT_METADATA":
            data = f.read_bytes()
            f.write_bytes(data[: len(data) // 2])       # truncated


def test_corrupt_latest_checkpoint_is_reported_and_an_older_one_used(tmp_path, reference):
    import shutil

    ref, src = reference
    G = CONFIG["loop"]["generations"]
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    state = out / "checkpoints" / "variant_001" / "state"
    history = out / "checkpoints" / "variant_001" / "history"
    latest = max(_steps(state))
    assert latest == G + 1
    _corrupt(state / str(latest))                                  # truncated data files
    (history / str(max(_steps(history))) / "meta" / "metadata").write_text('{"t0": 15')   # cut JSON
    with pytest.warns(CheckpointWarning) as record:
        again = scl.simulate(_cfg(), out_dir=out, resume=True)
    text = " ".join(str(w.message) for w in record)
    assert f"variant_001/history/{G + 1}" in text and f"variant_001/state/{G + 1}" in text
    _equal(again, ref)
    # every state gone bad: start the variant again from generation 0, same numbers
    for s in _steps(state):
        _corrupt(state / str(s))
    with pytest.warns(CheckpointWarning):
        _equal(scl.simulate(_cfg(), out_dir=out, resume=True), ref)


def test_load_generation_gives_the_states_behind_the_saved_metrics(reference, tmp_path):
    ref, out = reference
    for g in (0, 1, 29, CONFIG["loop"]["generations"]):
        variants = load_generation(out, generation=g)
        assert [v.static for v in variants] == [{"regime": "fresh"}, {"regime": "accumulate_subsample"}]
        for v in variants:
            assert [p["seed"] for p in v.points] == [0, 1, 2] * 2
            assert [p["sampling_bias"] for p in v.points] == [1.0] * 3 + [0.8] * 3
            # the truth is N(0, I_2): the metrics recorded for generation g, recomputed in numpy
            mean, cov = np.asarray(v.states.mean, np.float64), np.asarray(v.states.cov, np.float64)
            sel = dict(regime=v.static["regime"], generation=g)
            np.testing.assert_allclose((mean ** 2).sum(1), ref["mean_sqerr"].sel(sel).values.reshape(-1), rtol=1e-5)
            np.testing.assert_allclose(np.trace(cov, axis1=1, axis2=2) / 2, ref["trace_ratio"].sel(sel).values.reshape(-1),
                                       rtol=1e-5)
    with pytest.raises(ConfigError, match="^generation: must be in"):
        load_generation(out, generation=CONFIG["loop"]["generations"] + 1)
    # samples drawn from seed 1's fresh-regime models of generation 5
    from scl.samples import draw

    gm = load_generation(out, generation=5)[0]
    n = 4000
    labels, x, _ = draw(gm, n, seed=1)
    assert labels == ["regime=fresh, sampling_bias=1", "regime=fresh, sampling_bias=0.8"]
    for j, c in enumerate((1, 4)):                     # configurations of seed 1
        mean, cov = np.asarray(gm.states.mean)[c], np.asarray(gm.states.cov)[c] * [1.0, 0.8][j]
        assert np.all(np.abs(x[j].mean(0) - mean) <= 4 * np.sqrt(np.diag(cov) / n))
    png = tmp_path / "s.png"
    assert cli.main(["samples", str(out), "--generation", "5", "--n", str(n), "--seed", "1", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scl_plot_regenerates_every_figure_from_saved_results(tmp_path, reference, capsys):
    import shutil

    _, src = reference
    ref_out = tmp_path / "run"
    shutil.copytree(src, ref_out)
    cli._finish(reference[0], _cfg(), ref_out)       # what `scl run` writes at the end
    figures = sorted(ref_out.glob("*.png"))
    names = [f.name for f in figures]
    assert {"curves.png", "phase_diagram.png"} <= set(names)
    assert len(names) == 2 + 2     # two sweep dims: a final-generation heatmap per metric
    before = {f.name: f.read_bytes() for f in figures}
    for f in figures:
        f.unlink()
    assert cli.main(["plot", str(ref_out)]) == 0
    assert {f.name: f.read_bytes() for f in sorted(ref_out.glob("*.png"))} == before
    assert not [p for p in ref_out.iterdir() if p.name.startswith(".") and p.name != ".scl.lock"]    # no temporary files left


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from scl.atomic import atomic_path, write_text

    path = write_text(tmp_path / "summary.txt", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.txt"]


def test_relative_output_folder_checkpoints_and_resumes(tmp_path, monkeypatch):
    """`scl run CONFIG` writes into the relative folder runs/<name> by default (orbax wants
    absolute paths; a relative one must work all the same)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(
        "name: rel\nseeds: 2\nloop: {generations: 4, n: 8, regime: replace}\n"
        "metrics: {names: [trace_ratio]}\nrun: {chunk_size: 2}\n"
        "checkpoint: {keep_after_finish: true}\n")      # load_generation after the run finished
    assert cli.main(["run", "c.yaml", "--no-progress"]) == 0
    out = tmp_path / "runs" / "rel"
    assert (out / "results.nc").exists()
    gm = scl.load_generation("runs/rel", generation=3)
    ds = scl.load_results(out)
    trace = np.trace(np.asarray(gm[0].states.cov), axis1=1, axis2=2) / 2
    np.testing.assert_allclose(trace, ds.trace_ratio.sel(generation=3).values, rtol=1e-5)
