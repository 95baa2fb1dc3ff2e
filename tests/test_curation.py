"""Curation against THEORY.md section 5: exact enumeration, K = 1, the exponential tilt, E[e^r]."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl.config import Config, parse
from scl.curation import (ArgmaxCuration, LuceCuration, TopShareCuration, exact_luce_law,
                          make_curator)
from scl.errors import ConfigError
from helpers import rows_only, stage_of

P = np.array([0.4, 0.3, 0.2, 0.1])
R = np.array([0.0, 0.5, 1.0, 2.0])
TABLE = {"kind": "table", "values": R.tolist()}


def brute_force_luce(p, r, K, beta=1.0):
    """P(keep category i) by enumerating every ordered K-tuple (the literal definition)."""
    out = np.zeros(len(p))
    e = np.exp(beta * r)
    for tup in itertools.product(range(len(p)), repeat=K):
        prob = np.prod(p[list(tup)])
        weights = e[list(tup)]
        for k, i in enumerate(tup):
            out[i] += prob * weights[k] / weights.sum()
    return out


def curator(options, rows):
    stage, state = stage_of(lambda o, ctx: make_curator(o, ctx), options, rows=rows)
    return stage, rows_only(stage, state)


def curated_frequencies(options, rows, key, beta=1.0):
    stage, curate = curator(options, rows)
    kc, ks = jax.random.split(key)
    candidates = jax.random.categorical(ks, jnp.log(jnp.asarray(P)), shape=(rows * stage.candidates_per_row,))
    kept = jax.jit(curate)(kc, candidates, {"beta": jnp.float32(beta)})
    return np.bincount(np.asarray(kept), minlength=len(P)) / rows


def assert_within_4se(freq, law, rows):
    se = np.sqrt(law * (1 - law) / rows)
    assert np.all(np.abs(freq - law) <= 4 * se + 1e-12), (freq, law, se)


@pytest.mark.parametrize("K", [2, 3, 5])
def test_reference_law_equals_tuple_enumeration(K):
    np.testing.assert_allclose(exact_luce_law(P, R, K), brute_force_luce(P, R, K), rtol=1e-12)
    np.testing.assert_allclose(exact_luce_law(P, R, K, beta=2.5), brute_force_luce(P, R, K, 2.5), rtol=1e-12)


@pytest.mark.parametrize("K,beta", [(2, 1.0), (3, 1.0), (5, 1.0), (4, 0.3), (4, 3.0)])
def test_luce_matches_exact_enumeration(K, beta):
    rows = 200_000
    opts = parse(LuceCuration, {"K": K, "beta": beta, "reward": TABLE}, "curation")
    freq = curated_frequencies(opts, rows, jax.random.PRNGKey(K), beta)
    law = brute_force_luce(P, R, K, beta)
    assert_within_4se(freq, law, rows)
    assert np.abs(law - P).max() > 0.02          # >> 4 SE: the test tells curation from none


@pytest.mark.parametrize("K", [2, 4])
def test_argmax_matches_exact_law(K):
    rows = 200_000
    opts = parse(ArgmaxCuration, {"K": K, "reward": TABLE}, "curation")
    freq = curated_frequencies(opts, rows, jax.random.PRNGKey(10 + K))
    cdf = np.cumsum(P)          # rewards increase with the category index
    law = cdf ** K - np.concatenate([[0.0], cdf[:-1]]) ** K
    assert_within_4se(freq, law, rows)


def test_luce_beta_zero_keeps_the_law():
    rows = 200_000
    opts = parse(LuceCuration, {"K": 4, "beta": 0.0, "reward": TABLE}, "curation")
    assert_within_4se(curated_frequencies(opts, rows, jax.random.PRNGKey(3), beta=0.0), P, rows)


@pytest.mark.parametrize("rule", ["luce", "argmax"])
def test_K1_changes_nothing(rule):
    opts = parse({"luce": LuceCuration, "argmax": ArgmaxCuration}[rule],
                 {"K": 1, "reward": {"kind": "distance", "target": [1.0, 0.0]}}, "curation")
    _, cur = curator(opts, 1000)
    x = jax.random.normal(jax.random.PRNGKey(0), (1000, 2))
    np.testing.assert_array_equal(np.asarray(cur(jax.random.PRNGKey(1), x, {"beta": 5.0})), np.asarray(x))


def test_K1_loop_is_bit_identical_to_no_curation():
    base = dict(seeds=3, loop=dict(generations=4, n=40), metrics=dict(names=["w2", "trace_ratio"]),
                model=dict(family="gaussian", draw="rows"), run=dict(progress=False, chunk_size=4))
    plain = scl.simulate(Config.from_dict(base))
    cur = scl.simulate(Config.from_dict(dict(base, curation={"rule": "luce", "K": 1, "beta": 3.0,
                                                             "reward": {"kind": "linear", "weights": [1, 0]}})))
    for m in ("w2", "trace_ratio"):
        np.testing.assert_array_equal(plain[m].values, cur[m].values)


def test_large_K_approaches_the_exponential_tilt():
    tilt = P * np.exp(R) / np.sum(P * np.exp(R))
    Ks = (1, 2, 4, 8, 16, 32)
    tv = [0.5 * np.abs(exact_luce_law(P, R, K) - tilt).sum() for K in Ks]
    assert all(a > b for a, b in zip(tv, tv[1:])), tv
    assert tv[-1] < 0.02 and tv[0] > 0.2
    assert 0.4 < tv[-1] * 32 < 0.8 and 0.4 < tv[-2] * 16 < 0.8        # TV = O(1/K)
    rows = 60_000
    opts = parse(LuceCuration, {"K": 32, "reward": TABLE}, "curation")
    assert_within_4se(curated_frequencies(opts, rows, jax.random.PRNGKey(7)), exact_luce_law(P, R, 32), rows)


def test_top_share_keeps_the_best_rows():
    opts = parse(TopShareCuration, {"share": 0.3, "reward": {"kind": "linear", "weights": [1.0, -2.0]}}, "curation")
    assert opts.K == 4
    _, cur = curator(opts, 250)
    x = jax.random.normal(jax.random.PRNGKey(0), (1000, 2))
    kept = np.asarray(cur(jax.random.PRNGKey(1), x, {}))
    r = np.asarray(x) @ np.array([1.0, -2.0])
    np.testing.assert_allclose(np.sort(kept @ np.array([1.0, -2.0])), np.sort(r)[-250:], rtol=1e-6)


def test_exp_reward_never_decreases_in_a_fully_synthetic_loop():
    """Gaussian family, replace regime, Luce K=2, beta=1: E_seeds E_{p_t}[e^r] is non-decreasing."""
    cfg = Config.from_dict(dict(
        seeds=300, loop=dict(generations=8, n=400, regime="replace"),
        curation={"rule": "luce", "K": 2, "beta": 1.0, "reward": {"kind": "distance", "target": [2.0, 0.0]}},
        metrics=dict(names=["exp_reward"], samples=2048), run=dict(progress=False, chunk_size=8)))
    e = scl.simulate(cfg)["exp_reward"].values          # [seed, generation]
    diff = np.diff(e, axis=1)
    se = diff.std(0, ddof=1) / np.sqrt(diff.shape[0])
    assert np.all(diff.mean(0) >= -4 * se), (diff.mean(0), se)
    assert e[:, -1].mean() - e[:, 0].mean() > 10 * (e[:, -1] - e[:, 0]).std() / np.sqrt(e.shape[0])


def test_custom_reward_callable_and_import_path():
    from scl.rewards import make_reward, parse_reward

    x = jax.random.normal(jax.random.PRNGKey(0), (50, 2))
    by_path = make_reward(parse_reward({"kind": "custom", "function": "jax.numpy:linalg.norm"}))
    by_callable = make_reward(parse_reward(lambda row: -jnp.sum(row ** 2)))
    distance = make_reward(parse_reward({"kind": "distance", "target": [0.0, 0.0]}))
    np.testing.assert_allclose(by_path(x), -distance(x), rtol=1e-6)
    np.testing.assert_allclose(by_callable(x), -distance(x) ** 2, rtol=1e-5)


def test_reward_kinds_values():
    from scl.rewards import make_reward, parse_reward

    x = jnp.array([[2.0, 0.0], [0.0, 0.0], [2.0, 3.5], [0.5, 0.5], [1.5, 0.5]])
    clipped = make_reward(parse_reward({"kind": "clipped_centres", "centres": [[2, 0], [0, 2]],
                                        "clip": 1.0, "radius": 0.25, "scale": 2.0}))
    np.testing.assert_allclose(clipped(x), [0.0, -2.0, -2.0, -2.0, -2 * (np.sqrt(0.5) - 0.25)], rtol=1e-6)
    box = make_reward(parse_reward({"kind": "box", "low": [0, 0], "high": [1, 1]}))
    np.testing.assert_array_equal(box(x), [0, 1, 0, 1, 0])
    lin = make_reward(parse_reward({"kind": "linear", "weights": [1, 2], "bias": 0.5}))
    np.testing.assert_allclose(lin(x), [2.5, 0.5, 9.5, 2.0, 3.0])


@pytest.mark.parametrize("section,field", [
    ({"rule": "luce", "K": 0, "reward": TABLE}, "curation.K"),
    ({"rule": "luce", "beta": -1, "reward": TABLE}, "curation.beta"),
    ({"rule": "top_share", "share": 0.0, "reward": TABLE}, "curation.share"),
    ({"rule": "best", "reward": TABLE}, "curation.rule"),
    ({"rule": "luce"}, "curation.reward"),
    ({"rule": "luce", "reward": {"kind": "nope"}}, "curation.reward.kind"),
    ({"rule": "luce", "reward": {"kind": "custom", "function": "no_such_module:f"}}, "curation.reward.function"),
    ({"rule": "luce", "reward": {"kind": "distance", "target": [0, 0, 0]}}, "curation.reward"),
    ({"rule": "luce", "Kay": 2, "reward": TABLE}, "curation.Kay"),
])
def test_invalid_curation_names_the_field(section, field):
    with pytest.raises(ConfigError) as err:
        Config.from_dict({"curation": section})
    assert err.value.field == field, str(err.value)
    assert "\n" not in str(err.value)


def test_curation_yaml_round_trip_and_sweep_dims():
    cfg = Config.from_dict({"curation": {"rule": "luce", "K": 3, "beta": 0.5,
                                         "reward": {"kind": "clipped_centres", "centres": [[2, 0]], "clip": 2}},
                            "sweep": {"curation.beta": [0.5, 1.0], "curation.K": [2, 3]}})
    again = scl.load_config(__import__("yaml").safe_load(cfg.to_yaml()))
    assert again == cfg
    assert [p for p, _ in cfg.knob_axes] == ["curation.beta"]
    assert [p for p, _ in cfg.static_axes] == ["curation.K"]


def test_categorical_loop_one_step_matches_exact_law():
    """With the categorical family (issue 3): E[p_1 | p_0] is the exact Luce law of p_0."""
    from scl import registry

    if "categorical" not in registry.FAMILIES or "categorical" not in registry.SOURCES:
        pytest.skip("categorical family not available")
    from scl.engine import build_program, flat_inputs

    cfg = Config.from_dict(dict(
        truth={"kind": "categorical", "probs": P.tolist()}, model={"family": "categorical"},
        seeds=400, loop=dict(generations=1, n=500, regime="replace"),
        curation={"rule": "luce", "K": 3, "beta": 1.0, "reward": TABLE},
        metrics=dict(names=["expected_reward"]), run=dict(progress=False)))
    program = build_program(cfg, chunk_size=1)
    keys, knobs = flat_inputs(cfg)
    states, _ = program.init(keys, knobs)
    p0 = np.asarray(jax.tree_util.tree_leaves(states.model)[0], float)       # [seeds, k]
    states, _ = program.chunk(states, keys, knobs, 1)
    p1 = np.asarray(jax.tree_util.tree_leaves(states.model)[0], float)
    diff = p1 - np.stack([exact_luce_law(p, R, 3) for p in p0])
    se = diff.std(0, ddof=1) / np.sqrt(len(diff))
    assert np.all(np.abs(diff.mean(0)) <= 4 * se), (diff.mean(0), se)
    assert np.abs((p1 - p0).mean(0)).max() > 10 * se.max()           # curation visibly moved the law
