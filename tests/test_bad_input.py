"""Every bad input ends in one line ``scl: error: <field>: ...`` and exit status 2: never a
traceback, never silently accepted (issue 16, "Bad input").

The CLI runs in-process; ``simulate`` is replaced by a stub that fails the test, so an input that
should have been refused but reached the run is caught without running anything. Cases whose
error can only show when the program is traced (custom callables) run the real, tiny program.
"""
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml

from scl.cli import main

BASE = {
    "name": "t", "seed": 0, "seeds": 2,
    "truth": {"kind": "gaussian", "dim": 2},
    "model": {"family": "gaussian"},
    "loop": {"generations": 2, "n": 10},
    "metrics": {"names": ["w2", "mean_sqerr"], "samples": 16},
    "run": {"progress": False, "chunk_size": 2},
    "checkpoint": {"enabled": False},
}
CURATED = {**BASE, "curation": {"rule": "luce", "K": 2, "reward": {"kind": "distance", "target": [0.0, 0.0]}}}

BOMB = textwrap.dedent("""\
    a: &a ["x","x","x","x","x","x","x","x","x"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """)


class Accepted(Exception):
    """simulate() was reached: the input was not refused."""


@pytest.fixture
def cli(monkeypatch, capsys):
    import scl.devices

    def stub(*args, **kwargs):
        raise Accepted

    monkeypatch.setattr(sys.modules["scl.simulate"], "simulate", stub)
    monkeypatch.setattr(scl.devices, "use_cpu_devices", lambda count=None: False)

    def run(argv):
        try:
            rc = main([str(a) for a in argv])
        except Accepted:
            pytest.fail(f"accepted: {argv}")
        return rc, capsys.readouterr().err
    return run


def one_line(rc, err, field):
    assert "Traceback" not in err, err
    assert rc == 2, (rc, err)
    lines = [line for line in err.splitlines() if line.startswith("scl: error: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"scl: error: {field}"), err
    others = [line for line in err.splitlines() if not line.startswith("scl: error: ")]
    assert all(line.startswith("usage: ") for line in others) and len(others) <= 1, err


def write(tmp_path, data, name="c.yaml"):
    p = tmp_path / name
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


# ----------------------------------------------------------------------------- scl run: files and values

def _file(tmp_path, kind):
    if kind == "binary":
        return write(tmp_path, bytes(range(256)) * 4)
    if kind == "utf16":
        return write(tmp_path, yaml.safe_dump(BASE).encode("utf-16"))
    if kind == "latin1":
        return write(tmp_path, "name: caf\xe9\n".encode("latin-1"))
    if kind == "folder":
        return tmp_path
    if kind == "nul":
        return str(tmp_path / "a\0b.yaml")
    if kind == "long_name":
        return str(tmp_path / ("x" * 300 + ".yaml"))
    if kind == "long_path":
        return str(tmp_path / ("d/" * 2500)) + "c.yaml"
    if kind == "missing":
        return tmp_path / "missing.yaml"
    if kind == "list":
        return write(tmp_path, "- 1\n- 2\n")
    if kind == "scalar":
        return write(tmp_path, "42\n")
    if kind == "bad_yaml":
        return write(tmp_path, "a: [1, 2\n")
    if kind == "duplicate":
        return write(tmp_path, yaml.safe_dump(BASE) + "seeds: 3\n")
    if kind == "nested_duplicate":
        return write(tmp_path, "loop:\n  n: 10\n  n: 20\n")
    if kind == "bomb":
        return write(tmp_path, BOMB)
    if kind == "recursive":
        return write(tmp_path, "a: &a [*a]\n")
    if kind == "deep":
        return write(tmp_path, "[" * 1200 + "]" * 1200)
    if kind == "python_tag":
        return write(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    raise AssertionError(kind)


FILES = ["binary", "utf16", "latin1", "folder", "nul", "long_name", "long_path", "missing", "list", "scalar",
         "bad_yaml", "duplicate", "nested_duplicate", "bomb", "recursive", "deep", "python_tag"]


@pytest.mark.parametrize("kind", FILES)
def test_bad_config_file(cli, tmp_path, kind):
    start = time.perf_counter()
    one_line(*cli(["run", _file(tmp_path, kind)]), "config")
    assert time.perf_counter() - start < 5


def _out(tmp_path, kind):
    f = write(tmp_path, "x", "afile")
    return {"inside_file": f / "sub", "deep_inside_file": f / "a" / "b", "is_file": f,
            "nul": str(tmp_path / "o\0x"), "long": tmp_path / ("o" * 300)}[kind]


@pytest.mark.parametrize("kind", ["inside_file", "deep_inside_file", "is_file", "nul", "long"])
def test_bad_output_folder(cli, tmp_path, kind):
    rc, err = cli(["run", write(tmp_path, BASE), "-o", _out(tmp_path, kind)])
    one_line(rc, err, "--out")
    if "inside" in kind:
        assert "inside the file" in err, err


SETTINGS = [
    # huge numbers: overflow or cannot be allocated
    ("loop.n=1e308", "loop.n", BASE),
    ("loop.n=.inf", "loop.n", BASE),
    ("loop.generations=1e12", "loop.generations", BASE),
    ("loop.generations=1e308", "loop.generations", BASE),
    ("seeds=1e9", "seeds", BASE),
    ("seed=1e30", "seed", BASE),
    ("seed=-1", "seed", BASE),
    ("metrics.samples=1e12", "metrics.samples", BASE),
    ("curation.K=1e9", "curation.K", CURATED),
    ("loop.synthetic_size=1e11", "loop.", {**BASE, "loop": {**BASE["loop"], "regime": "accumulate"}}),
    ("sweep.loop.n=[10, 1e300]", "sweep.loop.n", BASE),
    # values
    ("truth.cov=[[1, 0], [0]]", "truth.cov", BASE),
    ("truth.cov=[[1, 0], [0, 1], [1, 1]]", "truth.cov", BASE),
    ("truth.mean=[.nan, 0]", "truth.mean", BASE),
    ("truth.mean=[.inf, 0]", "truth.mean", BASE),
    ("truth.cov=[[.nan, 0], [0, 1]]", "truth.cov", BASE),
    ("truth.cov=[[.inf, 0], [0, 1]]", "truth.cov", BASE),
    ("truth.std=.nan", "truth.std", BASE),
    ("curation.reward.centres=[[1, 2], [3]]", "curation.reward.centres", {
        **CURATED, "curation": {"rule": "luce", "K": 2, "reward": {"kind": "clipped_centres"}}}),
    ("curation.reward.target=[.nan, 0]", "curation.reward.target", CURATED),
    ("loop.real_fraction=.nan", "loop.real_fraction", BASE),
    ("model.matmul_precision=fp16", "model.matmul_precision", {**BASE, "model": {"family": "flow_matching"}}),
    ("=5", "--set", BASE),
    (" =5", "--set", BASE),
    ("loop.=5", "--set", BASE),
    ("loop..n=5", "--set", BASE),
    ("noequals", "--set", BASE),
    ("loop.n.x=5", "loop.n", BASE),
    ("seeds={a: 1, a: 2}", "--set", BASE),
]


@pytest.mark.parametrize("override,field,base", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_bad_setting(cli, tmp_path, override, field, base):
    one_line(*cli(["run", write(tmp_path, base), "--set", override]), field)


@pytest.mark.parametrize("count", ["1000000", "0", "-3", "257"])
def test_cpu_devices_bounded(cli, tmp_path, count):
    one_line(*cli(["run", write(tmp_path, BASE), "--cpu-devices", count]), "--cpu-devices")
    one_line(*cli(["resume", tmp_path, "--cpu-devices", count]), "--cpu-devices")


def test_diffusion_schedule_is_valid_for_every_timesteps():
    from scl.families.diffusion import alpha_bars

    for T in list(range(2, 40)) + [100, 1000, 4000]:
        for schedule in ("linear", "cosine"):
            a = alpha_bars(schedule, T)
            assert np.all(a > 0) and np.all(a < 1) and np.all(np.diff(a) < 0), (schedule, T)
    assert alpha_bars("linear", 5)[-1] == pytest.approx(alpha_bars("linear", 1000)[-1], rel=1e-9)


# ----------------------------------------------------------------------------- memory estimate

def test_shipped_configs_fit_in_memory_estimate():
    from pathlib import Path

    from scl.budget import check_memory
    from scl.config import load_config

    for path in sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml")):
        assert check_memory(load_config(path), available=2 * 2**30) < 2 * 2**30, path


def test_memory_estimate_names_the_setting():
    from scl.budget import check_memory
    from scl.config import load_config
    from scl.errors import ConfigError

    cfg = load_config(BASE)
    with pytest.raises(ConfigError) as e:
        check_memory(cfg.set("loop.generations", 10**9), available=2**30)
    assert e.value.field == "loop.generations" and "GiB" in e.value.message
    with pytest.raises(ConfigError) as e:
        check_memory(cfg.set("metrics.samples", 10**9), available=2**30)
    assert e.value.field == "metrics.samples"


# ----------------------------------------------------------------------------- other commands

@pytest.fixture
def results(tmp_path):
    import xarray as xr

    from scl.results import save_results

    ds = xr.Dataset({"w2": (("seed", "generation"), np.ones((2, 3), np.float32))},
                    coords={"seed": [0, 1], "generation": [0, 1, 2]}, attrs={"name": "t"})
    out = tmp_path / "run"
    save_results(ds, out)
    return out


def test_show_and_plot_refuse_what_is_not_results(cli, tmp_path, results):
    cfg = write(tmp_path, BASE)
    for cmd in ("show", "plot"):
        one_line(*cli([cmd, cfg]), "out_dir")
        one_line(*cli([cmd, tmp_path / "nothing"]), "out_dir")
        one_line(*cli([cmd, tmp_path]), "out_dir")
        one_line(*cli([cmd, str(tmp_path / "a\0b")]), "out_dir")
    one_line(*cli(["show", results, "--metric", "nope"]), "--metric")
    rc, _ = cli(["show", results, "--metric", "w2"])
    assert rc == 0


@pytest.mark.parametrize("argv,field", [
    (["--n", "0"], "--n"), (["--n", "-5"], "--n"), (["--n", "1000000000000"], "--n"),
    (["--generation", "-1"], "--generation"), (["--seed", "-1"], "--seed"),
])
def test_samples_refuses_bad_counts(cli, tmp_path, argv, field):
    argv = ["samples", tmp_path, *(["-g", "0"] if "--generation" not in argv else []), *argv]
    one_line(*cli(argv), field)


@pytest.mark.parametrize("argv", [
    [], ["bogus"], ["run"], ["run", "c.yaml", "--cpu-devices", "many"], ["samples", "x"],
    ["samples", "x", "-g", "one"], ["run", "c.yaml", "--no-such-flag"], ["show"],
])
def test_usage_errors_are_two_lines(cli, argv):
    rc, err = cli(argv)
    one_line(rc, err, "")
    assert len(err.splitlines()) == 2, err


# ----------------------------------------------------------------------------- custom callables

USER_MODULES = {
    "scl_t_broken": "def f(x:\n",
    "scl_t_raises": "raise RuntimeError('no GPU here\\nsecond line')\n",
    "scl_t_needs": "import scl_t_not_installed\n",
    "scl_t_ok": textwrap.dedent("""\
        import jax.numpy as jnp

        def reward(x):
            return -jnp.sum(x ** 2)

        def not_traceable(x):
            return float(x[0])

        def vector(x):
            return x

        def project_badly(x):
            return x[:1]

        CONSTANT = 3
        """),
}


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    for name, text in USER_MODULES.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in USER_MODULES:
        sys.modules.pop(name, None)


CALLABLES = ["os:system", "builtins:print", "numpy:sin", "subprocess:run", "shutil:rmtree", "os.path:join",
             "collections:OrderedDict", "scl_t_no_such_module:f", "scl_t_broken:f", "scl_t_raises:f",
             "scl_t_needs:f", "scl_t_ok:missing", "scl_t_ok:CONSTANT", "not a path!", ":f", "scl_t_ok:"]


def _reward(fn):
    return {**CURATED, "curation": {"rule": "luce", "K": 2, "reward": {"kind": "custom", "function": fn}}}


def _projection(fn):
    return {**BASE, "correction": {"kind": "projection", "onto": "custom", "function": fn}}


@pytest.mark.parametrize("spec", CALLABLES)
def test_custom_callables_refused_at_validation(cli, tmp_path, user_modules, spec):
    before = set(sys.modules)
    one_line(*cli(["run", write(tmp_path, _reward(spec))]), "curation.reward.function")
    one_line(*cli(["run", write(tmp_path, _projection(spec))]), "correction.function")
    new = {m for m in set(sys.modules) - before if not m.startswith("scl_t_")}
    assert not new, f"validation imported {sorted(new)}"


@pytest.mark.parametrize("spec,make", [
    ("scl_t_ok:not_traceable", _reward), ("scl_t_ok:vector", _reward),
    ("scl_t_ok:not_traceable", _projection), ("scl_t_ok:project_badly", _projection),
])
def test_custom_callables_failing_when_traced(tmp_path, user_modules, capsys, spec, make):
    """The real (tiny) program: the failure shows while JAX traces the function, as one line."""
    field = "curation.reward.function" if make is _reward else "correction.function"
    rc = main(["run", str(write(tmp_path, make(spec))), "-o", str(tmp_path / "out"), "--no-progress",
               "--cpu-devices", "1"])
    one_line(rc, capsys.readouterr().err, field)


def test_bomb_refused_at_once_in_a_fresh_process(tmp_path):
    """The 1 KB alias bomb (10^9 values when expanded) is refused in well under a second of work."""
    bomb = write(tmp_path, BOMB)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "scl.cli", "run", str(bomb)], capture_output=True, text=True,
                         timeout=60)
    one_line(out.returncode, out.stderr, "config")
    assert time.perf_counter() - start < 30
