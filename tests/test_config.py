"""Every invalid input is one ConfigError naming the field; the CLI prints one line, exit 2."""
import subprocess
import sys

import numpy as np
import pytest

import scl
from scl.cli import main
from scl.config import load_config

BASE = {
    "truth": {"kind": "gaussian", "dim": 2},
    "model": {"family": "gaussian"},
    "loop": {"generations": 5, "n": 10, "regime": "fresh", "real_fraction": 0.5},
    "metrics": {"names": ["w2"]},
}


def cfg_with(path, value):
    return load_config(BASE, overrides=[(path, value)])


@pytest.mark.parametrize("path,value,field,words", [
    ("loop.bogus", 1, "loop.bogus", "unknown key"),
    ("colour", "red", "colour", "unknown key"),
    ("loop.n", "ten", "loop.n", "expected an integer"),
    ("loop.n", 2.5, "loop.n", "expected an integer"),
    ("loop.generations", True, "loop.generations", "expected an integer"),
    ("loop.real_fraction", 1.5, "loop.real_fraction", "[0, 1]"),
    ("loop.real_fraction", -0.1, "loop.real_fraction", "[0, 1]"),
    ("loop.n", 1, "loop.n", ">= 2"),
    ("loop.n", 2, "loop.n", "truth dimension 2"),
    ("loop.generations", 0, "loop.generations", ">= 1"),
    ("model.family", "transformer", "model.family", "allowed: "),
    ("loop.regime", "recycle", "loop.regime", "must be one of replace, fresh"),
    ("truth.kind", "imagenet", "truth.kind", "allowed: "),
    ("truth.mean", [0.0], "truth.mean", "needs 2 entries"),
    ("truth.cov", [[1.0, 2.0], [2.0, 1.0]], "truth.cov", "positive definite"),
    ("model.sampling_bias", 0.0, "model.sampling_bias", "(0, inf]"),
    ("model.estimator", "map", "model.estimator", "mle, unbiased"),
    ("metrics.names", ["w3"], "metrics.names[0]", "unknown metric"),
    ("seeds", 0, "seeds", ">= 1"),
    ("sweep.loop.real_fraction", [0.0, 2.0], "sweep.loop.real_fraction", "value 2.0 is invalid"),
    ("sweep.loop.nope", [1, 2], "sweep.loop.nope", "unknown setting"),
    ("sweep.loop.generations", [1, 2], "sweep.loop.generations", "cannot be swept"),
    ("sweep.loop.real_fraction", 0.5, "sweep.loop.real_fraction", "list of values"),
])
def test_invalid_field_is_named(path, value, field, words):
    with pytest.raises(scl.ConfigError) as err:
        cfg_with(path, value)
    assert err.value.field == field
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_full_covariance_mle_needs_n_greater_than_d():
    load_config(BASE, overrides=[("loop.n", 2), ("model.covariance", "diag")])  # diag is fine
    with pytest.raises(scl.ConfigError, match="loop.n"):
        load_config(BASE, overrides=[("truth.dim", 5), ("loop.n", 5)])


def test_regime_needs_its_setting():
    with pytest.raises(scl.ConfigError, match="loop.real_fraction: regime 'fresh'"):
        load_config(BASE, overrides=[("loop.real_fraction", None)])
    with pytest.raises(scl.ConfigError, match="loop.lam"):
        load_config(BASE, overrides=[("loop.regime", "fixed_real")] * 1 + [("loop.lam", 1.0)])
    cfg = load_config(BASE, overrides=[("loop.regime", "fixed_real"), ("loop.real_fraction", 0.25)])
    assert cfg.loop.lam_value == pytest.approx(3.0)


def test_metric_that_does_not_apply_is_refused():
    with pytest.raises(scl.ConfigError, match="metrics.names: metric 'w2' needs a Gaussian truth"):
        scl.simulate(load_config(BASE, overrides=[("truth", {"kind": "moons"}), ("loop.n", 10)]))


def test_python_config_is_typed_frozen_and_validated():
    cfg = scl.Config(loop=scl.LoopConfig(generations=3, n=8, regime="replace"), seeds=2)
    with pytest.raises(Exception):
        cfg.seeds = 3  # frozen
    assert cfg.model.name == "gaussian" and cfg.truth.dim == 2
    with pytest.raises(scl.ConfigError, match="loop.real_fraction"):
        scl.Config(loop=scl.LoopConfig(regime="fresh"))
    assert load_config(cfg.to_dict()) == cfg


def test_yaml_overrides_and_bad_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("loop:\n  generations: 7\n  n: 9\n")
    assert load_config(p, ["loop.n=12"]).loop.n == 12
    p.write_text("loop: [\n")
    with pytest.raises(scl.ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(scl.ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")


def test_cli_one_line_error_no_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("loop:\n  regime: fresh\n  real_fraction: 1.5\n")
    proc = subprocess.run([sys.executable, "-m", "scl.cli", "run", str(cfg), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "scl: error: loop.real_fraction: must be in [0, 1], got 1.5"
    assert "Traceback" not in proc.stderr


def test_cli_refuses_to_overwrite_results(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seeds: 2\nloop: {generations: 3, n: 8, regime: replace}\nmetrics: {names: [w2]}\n")
    out = tmp_path / "out"
    assert main(["run", str(cfg), "-o", str(out), "--no-progress"]) == 0
    before = (out / "results.nc").read_bytes()
    assert main(["run", str(cfg), "-o", str(out), "--no-progress", "--set", "seed=5"]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (out / "results.nc").read_bytes() == before
    assert main(["run", str(cfg), "-o", str(out), "--no-progress", "--set", "seed=5", "--overwrite"]) == 0
    assert (out / "results.nc").read_bytes() != before
    for f in ("phase_diagram.png", "curves.png", "summary.txt", "config.yaml"):
        assert (out / f).stat().st_size > 0


def test_figures_survive_metrics_without_finite_values(tmp_path):
    """A held-out NLL that is inf everywhere (a lost category) still gets its figures drawn."""
    from scl.plots import plot_all

    cfg = scl.Config.from_dict({"seeds": 2, "truth": {"kind": "zipf", "categories": 400},
                                "model": {"family": "categorical"},
                                "loop": {"generations": 2, "n": 20, "regime": "replace"},
                                "metrics": {"names": ["nll", "surviving_categories"]}, "run": {"progress": False}})
    ds = scl.simulate(cfg)
    assert np.isinf(ds.nll.values).all()
    for path in plot_all(ds, tmp_path):
        assert path.stat().st_size > 0
