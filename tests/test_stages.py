"""Stages with state and weights: the threshold rule, state carried through checkpoints, and the
shared per-generation probe (per-mode masses sum to 1)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import scl
from scl.checkpoint import RunCheckpoint
from scl.config import parse
from scl.curation import ThresholdCuration, make_curator
from scl.simulate import run_variant
from scl.stages import Stage, chain
from helpers import stage_of


def test_threshold_keeps_exactly_the_rows_above_it_first_in_order():
    opts = parse(ThresholdCuration, {"threshold": 0.3, "reward": {"kind": "linear", "weights": [1.0, 0.0]}},
                 "curation")
    stage, state = stage_of(make_curator, opts, rows=500)
    x = jax.random.normal(jax.random.PRNGKey(0), (500, 2))
    _, kept, w = jax.jit(stage.apply)(jax.random.PRNGKey(1), state, x, jnp.ones(500), {"threshold": jnp.float32(0.3)})
    x, kept, w = np.asarray(x), np.asarray(kept), np.asarray(w)
    above = x[:, 0] > 0.3
    k = int(above.sum())
    assert stage.weighted and 0 < k < 500
    np.testing.assert_array_equal(w, (np.arange(500) < k).astype(np.float32))     # kept rows first
    np.testing.assert_array_equal(kept[:k], x[above])                            # in their order
    np.testing.assert_array_equal(np.sort(kept[k:], 0), np.sort(x[~above], 0))   # a permutation


@pytest.mark.parametrize("tau", [-0.5, 0.7])
def test_threshold_loop_fits_the_truncated_normal(tau):
    """One generation of replace with a threshold on x_1: given generation 0's fit N(mu, s^2) in
    x_1, the kept rows are N(mu, s^2) truncated below tau, so the next fit's mean of x_1 has
    expectation mu + s phi(a) / (1 - Phi(a)), a = (tau - mu) / s (checked within 4 SE)."""
    from scl.engine import build_program, flat_inputs

    cfg = scl.Config.from_dict({
        "seeds": 2000, "truth": {"kind": "gaussian", "dim": 2}, "model": {"family": "gaussian"},
        "loop": {"generations": 1, "n": 200, "regime": "replace"},
        "curation": {"rule": "threshold", "threshold": tau, "reward": {"kind": "linear", "weights": [1.0, 0.0]}},
        "metrics": {"names": ["mean_sqerr"]}, "run": {"progress": False, "chunk_size": 1}})
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    g0, _ = program.init(keys, knobs)
    g1, _ = program.chunk(g0, keys, knobs, 1)
    mu, s = np.asarray(g0.model.mean)[:, 0], np.sqrt(np.asarray(g0.model.cov)[:, 0, 0])
    a = (tau - mu) / s
    expected = mu + s * norm.pdf(a) / norm.sf(a)
    diff = np.asarray(g1.model.mean)[:, 0] - expected
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert abs(diff.mean()) <= 4 * se, (diff.mean(), se)
    assert abs(np.mean(expected) - np.mean(mu)) > 20 * se              # the threshold visibly acted


def test_chain_composes_in_order_with_each_sections_key_and_knobs():
    calls = []

    def stage(tag, K=1):
        def init(key, real):
            return jnp.float32(0)

        def apply(key, state, rows, w, knobs):
            calls.append((tag, rows.shape[0], tuple(sorted(knobs))))
            n = rows.shape[0] // K
            return state + 1, rows[:n] * knobs["scale"], w[:n]
        return Stage(init, apply, K)

    c = chain([("curation", stage("a", K=2)), ("correction", stage("b"))])
    assert c.candidates_per_row == 2 and not c.weighted
    states = c.init({"curation": jax.random.PRNGKey(0), "correction": jax.random.PRNGKey(1)}, jnp.zeros((3, 1)))
    keys = {"curation": jax.random.PRNGKey(2), "correction": jax.random.PRNGKey(3)}
    knobs = {"curation": {"scale": 2.0}, "correction": {"scale": 5.0}, "loop": {}}
    states, rows, w = c.apply(keys, states, jnp.ones((8, 1)), jnp.ones(8), knobs)
    assert calls == [("a", 8, ("scale",)), ("b", 4, ("scale",))]
    np.testing.assert_array_equal(np.asarray(rows), np.full((4, 1), 10.0))
    assert {k: int(v) for k, v in states.items()} == {"curation": 1, "correction": 1}


def test_kmeans_centres_are_checkpointed_and_resume_is_bit_identical(tmp_path):
    cfg = scl.Config.from_dict({
        "seeds": 3, "truth": {"kind": "eight_gaussians", "std": 0.2}, "model": {"family": "gaussian"},
        "loop": {"generations": 9, "n": 64, "regime": "accumulate", "synthetic_size": 16},
        "correction": {"kind": "kmeans", "k": 8, "strength": 0.5, "iterations": 5},
        "metrics": {"names": ["mode_mass_min"], "samples": 64},
        "sweep": {"correction.strength": [0.0, 0.5]}, "run": {"progress": False, "chunk_size": 3}})
    plain = scl.simulate(cfg.set("run.chunk_size", 9))
    ckpt = RunCheckpoint(tmp_path / "run", cfg)

    def stop(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_variant(cfg, on_chunk=stop, checkpoint=ckpt.variants[0])
    ckpt.variants[0].close()
    import orbax.checkpoint as ocp

    mgr = ocp.CheckpointManager((tmp_path / "run" / "checkpoints" / "variant_000" / "state").absolute())
    first, later = mgr.restore(1)["state"], mgr.restore(4)["state"]
    mgr.close()
    centres = np.asarray(later["stages"]["correction"])
    assert centres.shape == (6, 8, 2)                                          # [C, k, d] centres
    np.testing.assert_array_equal(centres, np.asarray(first["stages"]["correction"]))   # carried, not refitted
    resumed = scl.simulate(cfg.set("run.chunk_size", 5), out_dir=tmp_path / "run", resume=True)
    for name in plain.data_vars:
        np.testing.assert_array_equal(plain[name].values, resumed[name].values)


def test_mode_masses_share_one_probe_and_sum_to_one():
    cfg = scl.Config.from_dict({
        "seeds": 4, "truth": {"kind": "eight_gaussians", "std": 0.3}, "model": {"family": "kde", "bandwidth": 0.2},
        "loop": {"generations": 3, "n": 128, "regime": "replace"},
        "metrics": {"names": ["mode_mass", "mode_mass_min", "mode_mass_max", "modes_covered", "mode_entropy"],
                    "samples": 300},
        "run": {"progress": False, "chunk_size": 3}})
    ds = scl.simulate(cfg)
    masses = np.stack([ds[f"mode_mass_{i}"].values for i in range(8)])        # [8, seed, generation]
    np.testing.assert_allclose(masses.sum(0), 1.0, atol=2e-6)
    np.testing.assert_array_equal(ds["mode_mass_min"].values, masses.min(0))
    np.testing.assert_array_equal(ds["mode_mass_max"].values, masses.max(0))
    np.testing.assert_array_equal(ds["modes_covered"].values, (masses >= 0.02).sum(0))
    m = masses
    entropy = -np.sum(np.where(m > 0, m * np.log(np.where(m > 0, m, 1.0)), 0.0), 0)
    np.testing.assert_allclose(ds["mode_entropy"].values, entropy, rtol=1e-5)
    assert np.all(np.round(masses * 300, 4) == np.round(masses * 300))          # shares of 300 rows
