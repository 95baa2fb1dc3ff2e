"""Checkpoints: bit-identical resume after SIGKILL / Ctrl-C, chunk-size independence, refusals,
corrupt checkpoints, reading generations back, regenerated figures, atomic files."""
from __future__ import annotations

import os
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
    "metrics": {"names": ["w2", "mean_sqerr"]},
    "sweep": {"loop.regime": ["fresh", "accumulate_subsample"], "model.sampling_bias": [1.0, 0.8]},
    "run": {"chunk_size": 3, "progress": False},
}


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """Share compiled programs between this process and the `scl` subprocesses it starts."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    path = str(tmp_path_factory.mktemp("jax_cache"))
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {n: getattr(jax.config, n) for n in names}
    for n, v in zip(names, (path, 0.0, 0)):
        jax.config.update(n, v)
    cc.reset_cache()
    yield path
    for n, v in old.items():
        jax.config.update(n, v)
    cc.reset_cache()


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
    assert f"/{2 * CONFIG['loop']['generations']} gen" in err and "median w2" in err   # progress bar
    assert cli.main(["run", str(tmp_path / "cfg.yaml"), "-o", str(out), "--resume", "--no-progress"]) == 0
    _equal(scl.load_results(out), ref)


def test_results_do_not_depend_on_chunk_size_or_checkpointing(tmp_path):
    cfg = _cfg(loop__generations=13, sweep={"model.sampling_bias": [1.0, 0.8]}, loop__regime="accumulate_subsample")
    plain = scl.simulate(cfg.set("run.chunk_size", 5))                      # no checkpoints
    one = scl.simulate(cfg.set("run.chunk_size", 13), out_dir=tmp_path / "a")
    _equal(plain, one)
    # interrupted after the first chunk of 3, resumed with chunks of 7
    ckpt = RunCheckpoint(tmp_path / "b", cfg.set("run.chunk_size", 3))

    def stop(*_):
        raise KeyboardInterrupt

    from scl.simulate import run_variant

    with pytest.raises(KeyboardInterrupt):
        run_variant(cfg.set("run.chunk_size", 3), on_chunk=stop, checkpoint=ckpt.variants[0])
    ckpt.variants[0].close()
    resumed = scl.simulate(cfg.set("run.chunk_size", 7), out_dir=tmp_path / "b", resume=True)
    _equal(plain, resumed)


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


def test_load_generation_gives_the_states_behind_the_saved_metrics(reference):
    from scl.metrics import MetricContext, make_metrics

    ref, out = reference
    for g in (0, 1, 29, CONFIG["loop"]["generations"]):
        variants = load_generation(out, generation=g)
        assert [v.static for v in variants] == [{"regime": "fresh"}, {"regime": "accumulate_subsample"}]
        for v in variants:
            assert [p["seed"] for p in v.points] == [0, 1, 2] * 2
            assert [p["sampling_bias"] for p in v.points] == [1.0] * 3 + [0.8] * 3
            # the closed-form W2 of the loaded Gaussians is the W2 recorded for generation g
            from scl.data import make_source
            from scl.families import make_family

            source = make_source(v.config.truth)
            fam = make_family(v.config.model, source)
            w2 = make_metrics(MetricContext(fam, source, v.config.metrics, v.config))["w2"]
            got = jax.vmap(lambda s, k: w2(jax.random.PRNGKey(0), s, k))(v.states, v.knobs)
            want = ref["w2"].sel(regime=v.static["regime"], generation=g).values.reshape(-1)
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="^generation: must be in"):
        load_generation(out, generation=CONFIG["loop"]["generations"] + 1)


def test_stride_and_samples_png(tmp_path):
    cfg = _cfg(loop__generations=9, sweep={}, checkpoint__stride=3, run__chunk_size=4)
    out = tmp_path / "run"
    scl.simulate(cfg, out_dir=out)
    with pytest.raises(ConfigError, match="generation 4 was not kept .*stride = 3"):
        load_generation(out, generation=4)
    (gm,) = load_generation(out, generation=6)
    from scl.samples import draw

    n = 4000
    labels, x, truth = draw(gm, n, seed=1)
    mean = np.asarray(gm.states.mean)[1]
    cov = np.asarray(gm.states.cov)[1]
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x[0].mean(0) - mean) <= 4 * se)             # samples of seed 1's model
    assert cli.main(["samples", str(out), "--generation", "6", "--n", "300"]) == 0
    png = out / "samples_gen6.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["samples", str(out), "--generation", "7"]) == 2   # not kept: one-line error


def test_scl_plot_regenerates_every_figure_from_saved_results(tmp_path, reference, capsys):
    import shutil

    _, src = reference
    ref_out = tmp_path / "run"
    shutil.copytree(src, ref_out)
    cli._finish(reference[0], _cfg(), ref_out)       # what `scl run` writes at the end
    figures = sorted(ref_out.glob("*.png"))
    assert [f.name for f in figures] == ["curves.png", "phase_diagram.png"]
    before = {f.name: f.read_bytes() for f in figures}
    for f in figures:
        f.unlink()
    assert cli.main(["plot", str(ref_out)]) == 0
    assert {f.name: f.read_bytes() for f in sorted(ref_out.glob("*.png"))} == before
    assert not [p for p in ref_out.iterdir() if p.name.startswith(".")]    # no temporary files left


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from scl.atomic import atomic_path, write_text

    path = write_text(tmp_path / "summary.txt", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.txt"]
