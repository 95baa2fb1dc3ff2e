"""Habits researchers expect: --version, python -m scl, help on every argument, a progress bar
that says "compiling" and times its ETA on run time only, a per-sweep-point report after each
static variant, per-chunk callbacks and TensorBoard logging, checkpoints removed after a finished
run unless kept, the notebook's install cell and badge, .gitignore."""
from __future__ import annotations

import argparse
import io
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import scl
from scl import cli

ROOT = Path(__file__).resolve().parents[1]

# one static sweep (two compiled variants) x one knob sweep (two points) x two seeds, 3 generations
CONFIG = {
    "name": "habits", "seed": 1, "seeds": 2,
    "truth": {"kind": "gaussian", "dim": 2},
    "model": {"family": "gaussian"},
    "loop": {"generations": 3, "n": 16, "regime": "fresh", "real_fraction": 0.5},
    "metrics": {"names": ["trace_ratio", "mean_sqerr"]},
    "sweep": {"loop.regime": ["fresh", "replace"], "loop.real_fraction": [0.0, 1.0]},
    "run": {"chunk_size": 2, "progress": False},
}


# ------------------------------------------------------------------ command line

def test_version_and_python_dash_m(capsys):
    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"scl {scl.__version__}"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-m", "scl", "--version"], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"scl {scl.__version__}", r.stderr


def _actions(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for a, where in _actions(sub):
                    yield a, f"{name} {where}"
        else:
            yield action, parser.prog


def test_every_argument_of_every_subcommand_has_help():
    missing = [f"{where}: {a.dest}" for a, where in _actions(cli.build_parser())
               if not (a.help and a.help.strip()) and a.help != argparse.SUPPRESS]
    assert not missing
    subcommands = {a.dest for a, _ in _actions(cli.build_parser())}
    assert {"config", "out_dir", "generation", "metric", "tensorboard", "version"} <= subcommands


# ------------------------------------------------------------------ progress bar

class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_bar_says_compiling_and_times_eta_on_run_time_only():
    from tqdm import tqdm

    from scl.progress import Bar

    clock = _Clock()
    sink = io.StringIO()
    bar = Bar(tqdm(total=100, file=sink, bar_format="{n_fmt}/{total_fmt} [{postfix}]", mininterval=0), clock)
    bar.compiling()
    assert "compiling" in sink.getvalue()
    clock.t += 100.0                  # first chunk: 100 s compile, 10 generations
    bar.update(10)
    assert bar.inner.postfix == "ETA ?"
    clock.t += 2.0                    # compiled: 10 generations in 2 s -> 80 left = 16 s
    bar.update(10)
    assert bar.inner.postfix == "ETA 00:16"
    bar.compiling()                   # next static variant compiles again: not timed
    clock.t += 50.0
    bar.update(10)
    assert bar.inner.postfix == "ETA 00:14"      # 70 left at 0.2 s per generation
    bar.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run with the progress bar on, a recording callback and a TensorBoard writer."""
    pytest.importorskip("tensorboardX")
    from scl.tensorboard import TensorBoard

    tb = tmp_path_factory.mktemp("tb")
    events = []
    err = io.StringIO()
    real = sys.stderr
    sys.stderr = err                   # the bar and the variant reports go to stderr
    try:
        ds = scl.simulate(scl.load_config(CONFIG), progress=True, callbacks=[events.append, TensorBoard(tb)])
    finally:
        sys.stderr = real
    return ds, events, err.getvalue(), tb


def test_progress_reports_each_variant_per_sweep_point(run):
    ds, _, err, _ = run
    assert "compiling" in err
    G = CONFIG["loop"]["generations"]
    med = ds.trace_ratio.sel(generation=G).median("seed")
    for regime in ("fresh", "replace"):
        line = next(l for l in err.splitlines() if l.startswith(f"regime={regime}: median trace_ratio"))
        got = dict(re.findall(r"real_fraction=([\d.]+): ([-\d.e+na]+)", line))
        assert set(got) == {"0", "1"}, line
        for rf, text in got.items():
            np.testing.assert_allclose(float(text), float(med.sel(regime=regime, real_fraction=float(rf))),
                                       rtol=1e-3)


# ------------------------------------------------------------------ callbacks and TensorBoard

def test_callbacks_get_every_chunk_of_every_variant(run):
    ds, events, _, _ = run
    G = CONFIG["loop"]["generations"]
    assert [e.variant for e in events] == [0, 0, 0, 1, 1, 1]        # generation 0, then chunks of 2, 1
    for v, regime in enumerate(("fresh", "replace")):
        mine = [e for e in events if e.variant == v]
        assert [e.generations for e in mine] == [(0, 1), (1, 3), (3, 4)]
        assert all(e.static == {"regime": regime} and not e.restored and e.total_generations == G for e in mine)
        points = mine[0].points
        assert points[:3] == [{"real_fraction": 0.0, "seed": 0}, {"real_fraction": 0.0, "seed": 1},
                              {"real_fraction": 1.0, "seed": 0}]
        for name in ("trace_ratio", "mean_sqerr"):
            got = np.concatenate([e.metrics[name] for e in mine])     # [G+1, C]
            assert got.shape == (G + 1, len(points))
            for c, p in enumerate(points):
                want = ds[name].sel(regime=regime, real_fraction=p["real_fraction"], seed=p["seed"]).values
                np.testing.assert_array_equal(got[:, c], want)


def _scalars(folder: Path) -> dict:
    """{tag: {step: value}} from the TFRecord event files in ``folder`` (tensorboardX's protos)."""
    from tensorboardX.proto import event_pb2

    out: dict = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4                            # length, its crc, record, its crc
            for v in event.summary.value:
                out.setdefault(v.tag, {})[event.step] = v.simple_value
    return out


def test_tensorboard_logs_the_median_over_seeds_per_sweep_point(run):
    ds, _, _, tb = run
    runs = sorted(p.name for p in tb.iterdir())
    assert runs == ["regime=fresh,real_fraction=0", "regime=fresh,real_fraction=1",
                    "regime=replace,real_fraction=0", "regime=replace,real_fraction=1"]
    for name in runs:
        coords = dict(kv.split("=") for kv in name.split(","))
        scalars = _scalars(tb / name)
        assert set(scalars) == {"trace_ratio", "mean_sqerr"}
        for metric, by_step in scalars.items():
            want = ds[metric].sel(regime=coords["regime"], real_fraction=float(coords["real_fraction"])) \
                .median("seed").values
            assert sorted(by_step) == list(range(len(want)))
            np.testing.assert_allclose([by_step[g] for g in sorted(by_step)], want, rtol=1e-6)


# ------------------------------------------------------------------ checkpoints after a finished run

def test_finished_run_drops_its_checkpoints_unless_kept(tmp_path, capsys):
    cfg = dict(CONFIG, sweep={"loop.real_fraction": [0.0, 1.0]})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out, tb = tmp_path / "out", tmp_path / "tb"
    pytest.importorskip("tensorboardX")
    assert cli.main(["run", str(tmp_path / "c.yaml"), "-o", str(out), "--no-progress", "--tensorboard", str(tb)]) == 0
    assert (out / "results.nc").exists() and (out / "checkpoints" / "config.yaml").exists()
    assert not list((out / "checkpoints").glob("variant_*"))          # states and histories gone
    assert sorted(p.name for p in tb.iterdir()) == ["real_fraction=0", "real_fraction=1"]
    capsys.readouterr()
    assert cli.main(["resume", str(out), "--no-progress"]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert cli.main(["samples", str(out), "--generation", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoint.keep_after_finish=true" in err, err

    kept = tmp_path / "kept"
    assert cli.main(["run", str(tmp_path / "c.yaml"), "-o", str(kept), "--no-progress",
                     "--set", "checkpoint.keep_after_finish=true"]) == 0
    assert list((kept / "checkpoints").glob("variant_*/history"))
    assert cli.main(["samples", str(kept), "--generation", "2", "--n", "50", "-o", str(tmp_path / "s.png")]) == 0


# ------------------------------------------------------------------ notebook, packaging

def test_notebook_installs_on_colab_as_written_and_has_a_badge():
    nb = json.loads((ROOT / "notebooks" / "quickstart.ipynb").read_text())
    first_md = "".join(nb["cells"][0]["source"])
    install = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    badge = re.search(r"\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]"
                      r"\(https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/[^/]+/"
                      r"notebooks/quickstart\.ipynb\)", first_md)
    assert badge
    repo = re.search(r'REPO = "https://github\.com/([^/"]+/[^/"]+)"', install)
    assert repo and repo.group(1) == badge.group(1)      # one repository, named alike in both
    assert "environ" not in install                      # nothing to set before running it
    assert "[notebook]" in install                       # widgets for the progress bar
    compile(install, "cell-1", "exec")


def test_extras_and_gitignore():
    text = (ROOT / "pyproject.toml").read_text()
    extras = dict(re.findall(r'^(\w+) = \[(.*)\]', text.split("[project.optional-dependencies]")[1], re.M))
    assert "ipywidgets" in extras["notebook"] and "tensorboardX" in extras["logging"]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "build/" in ignored and "runs/" in ignored
