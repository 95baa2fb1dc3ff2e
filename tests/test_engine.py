"""Engine invariants: determinism, sweep == single runs, chunk-size invariance, seed sharing."""
import numpy as np
import pytest

import scl


def small(**over):
    d = {
        "name": "t", "seeds": 6, "seed": 3,
        "truth": {"kind": "gaussian", "dim": 2, "cov": [[1.0, 0.3], [0.3, 0.5]]},
        "model": {"family": "gaussian"},
        "loop": {"generations": 23, "n": 16, "regime": "fresh", "real_fraction": 0.25},
        "metrics": {"names": ["w2", "sliced_w2"], "samples": 32, "projections": 8},
        "run": {"chunk_size": 5, "progress": False},
    }
    cfg = scl.Config.from_dict(d)
    for k, v in over.items():
        cfg = cfg.set(k, v)
    return cfg


def test_same_config_same_results():
    a, b = scl.simulate(small()), scl.simulate(small())
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_different_seed_differs():
    a, b = scl.simulate(small()), scl.simulate(small(seed=4))
    assert not np.array_equal(a.w2.values, b.w2.values)


@pytest.mark.slow   # slow: 22 s; test_checkpoint checks chunk-size independence with checkpoints
def test_chunk_size_does_not_change_results():
    ref = scl.simulate(small())
    for chunk in (1, 23, 40):
        got = scl.simulate(small(**{"run.chunk_size": chunk}))
        for name in ref.data_vars:
            np.testing.assert_array_equal(ref[name].values, got[name].values)


def test_sweep_equals_single_runs():
    """The loop's states are bitwise identical inside a sweep and alone. Metrics agree to float32
    rounding: XLA's batched eigh/dot may round differently with the batch size."""
    from scl.simulate import run_variant

    fractions = [0.0, 0.25, 1.0]
    cfg = small(**{"sweep.loop.real_fraction": fractions})
    sweep = scl.simulate(cfg)
    assert sweep.w2.dims == ("real_fraction", "seed", "generation")
    _, sweep_states = run_variant(cfg)
    for i, f in enumerate(fractions):
        single_cfg = small(**{"loop.real_fraction": f})
        single = scl.simulate(single_cfg)
        for name in single.data_vars:
            np.testing.assert_allclose(sweep[name].sel(real_fraction=f).values, single[name].values,
                                       rtol=1e-5, atol=1e-6)
        _, states = run_variant(single_cfg)
        rows = slice(i * cfg.seeds, (i + 1) * cfg.seeds)
        np.testing.assert_array_equal(np.asarray(sweep_states.model.mean[rows]), np.asarray(states.model.mean))
        np.testing.assert_array_equal(np.asarray(sweep_states.model.cov[rows]), np.asarray(states.model.cov))


def test_static_sweep_joins_compiled_variants():
    sweep = scl.simulate(small(**{"sweep.loop.n": [8, 16], "sweep.model.sampling_bias": [0.8, 1.0]}))
    assert sweep.w2.dims == ("n", "sampling_bias", "seed", "generation")
    single = scl.simulate(small(**{"loop.n": 8, "model.sampling_bias": 0.8}))
    np.testing.assert_allclose(sweep.w2.sel(n=8, sampling_bias=0.8).values, single.w2.values, rtol=1e-5, atol=1e-6)


def test_seeds_are_shared_across_grid_and_independent_of_count():
    few = scl.simulate(small(seeds=2))
    many = scl.simulate(small(seeds=6))
    np.testing.assert_allclose(few.w2.values, many.w2.isel(seed=slice(0, 2)).values, rtol=1e-5, atol=1e-6)
    # common random numbers: generation 0 (real data only) is the same at every grid point
    sweep = scl.simulate(small(**{"sweep.loop.real_fraction": [0.0, 1.0]}))
    np.testing.assert_array_equal(sweep.w2.isel(real_fraction=0, generation=0).values,
                                  sweep.w2.isel(real_fraction=1, generation=0).values)


def test_collapse_without_real_data_stability_with_it():
    ds = scl.simulate(small(**{"loop.generations": 60, "seeds": 16, "sweep.loop.real_fraction": [0.0, 1.0],
                               "metrics.names": ["trace_ratio"]}))
    med = ds.trace_ratio.median("seed")
    assert float(med.sel(real_fraction=0.0, generation=60)) < 0.2
    assert 0.7 < float(med.sel(real_fraction=1.0, generation=60)) < 1.3


def test_results_roundtrip(tmp_path):
    ds = scl.simulate(small(**{"sweep.loop.real_fraction": [0.0, 0.5]}))
    scl.save_results(ds, tmp_path)
    back = scl.load_results(tmp_path)
    np.testing.assert_array_equal(back.w2.values, ds.w2.values)
    assert list(back.real_fraction.values) == [0.0, 0.5]
    from scl.results import config_of
    assert config_of(back) == small(**{"sweep.loop.real_fraction": [0.0, 0.5]})


def test_compile_once_per_static_variant():
    from scl.engine import build_program, flat_inputs
    cfg = small()
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    states, _ = program.init(keys, knobs)
    states, _ = program.chunk(states, keys, knobs, 1)
    compiled = program.chunk._cache_size()
    for t in (6, 11, 16, 21):     # the last chunk runs past the final generation: same program
        states, _ = program.chunk(states, keys, knobs, t)
    assert program.chunk._cache_size() == compiled
    # a config differing only in knob values, seeds or name reuses the same compiled program
    assert build_program(small(**{"loop.real_fraction": 0.9, "seeds": 3, "name": "other"})) is program
    assert build_program(small(**{"loop.n": 12})) is not program


@pytest.mark.slow   # slow: 14 s; test_static_sweep_joins_compiled_variants covers static sweeps
def test_family_can_be_swept_as_a_static_axis():
    cfg = small(**{"loop.generations": 4, "metrics.names": ["sliced_w2"], "seeds": 3})
    sweep = scl.simulate(cfg.set("sweep.model.family", ["gaussian", "kde"]))
    assert sweep.sliced_w2.dims == ("family", "seed", "generation")
    assert list(sweep.family.values) == ["gaussian", "kde"]
    kde = scl.simulate(cfg.set("model.family", "kde"))        # gaussian-only options are dropped
    np.testing.assert_allclose(sweep.sliced_w2.sel(family="kde").values, kde.sliced_w2.values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("draw", ["statistics", "rows"])
def test_states_do_not_depend_on_how_many_configurations_run_together(draw):
    """Configurations give the same numbers in a batch of 448, of 224 and of 37 (sweep == single
    run, 1 device == several), to float32 rounding: XLA's CPU code rounds a multiply-add
    differently in its vectorised loop body and in the remainder, so bits can differ."""
    import jax

    from scl.engine import build_program, flat_inputs

    cfg = scl.load_config("configs/quickstart.yaml", overrides=[
        "loop.generations=6", "run.chunk_size=6", "metrics.names=[w2]", f"model.draw={draw}"])
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    finals = []
    for size in (keys.shape[0], 224, 37):
        part = jax.tree_util.tree_map(lambda a: a[:size], (keys, knobs))
        states, _ = program.init(*part)
        states, _ = program.chunk(states, *part, 1)
        finals.append(jax.tree_util.tree_map(lambda a: np.asarray(a[:37]), states.model))
    for other in finals[1:]:
        np.testing.assert_allclose(finals[0].mean, other.mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(finals[0].cov, other.cov, rtol=1e-5, atol=1e-6)
