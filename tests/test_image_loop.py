"""Image rows through the loop: class-conditional neural families, guidance, classifier rewards."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl.config import Config, ConfigError
from scl.data import make_source
from scl.data.digits import DigitsTruth
from scl.families import make_family
from scl.options import knob_values

TINY = {"width": 32, "depth": 1, "init_steps": 30, "steps": 5, "batch_size": 32, "timesteps": 50,
        "sample_steps": 5}


def digits_cfg(model=None, **sections):
    model = sections.pop("model", None) or model
    base = dict(seeds=2, truth={"kind": "digits"}, model={"family": "diffusion", **TINY, **(model or {})},
                loop={"n": 200, "generations": 1, "regime": "replace"},
                metrics={"names": ["class_entropy"], "samples": 64}, run={"progress": False})
    base.update(sections)
    return Config.from_dict(base)


@pytest.fixture(scope="module")
def fitted():
    """A tiny conditional diffusion fitted on 120 digit rows of classes 1 and 3 only (2:1)."""
    cfg = digits_cfg()
    source = make_source(cfg.truth)
    family = make_family(cfg.model, source)
    rows = source.sample(jax.random.PRNGKey(0), 1297)
    keep = np.concatenate([np.flatnonzero(np.asarray(rows["y"]) == 1)[:80], np.flatnonzero(np.asarray(rows["y"]) == 3)[:40]])
    x = jax.tree_util.tree_map(lambda a: a[keep], rows)
    knobs = knob_values(cfg.model)
    state = family.init(jax.random.PRNGKey(1), x, jnp.ones((120,)), knobs)
    return cfg, family, state, knobs


def test_sampled_labels_follow_training_counts(fitted):
    cfg, family, state, knobs = fitted
    np.testing.assert_array_equal(np.asarray(state.label_counts)[[1, 3]], [80, 40])
    out = family.sample(jax.random.PRNGKey(2), state, 3000, knobs)
    y = np.asarray(out["y"])
    assert out["x"].shape == (3000, 64) and out["y"].dtype == jnp.int32
    assert set(np.unique(y)) == {1, 3}
    share = np.mean(y == 1)
    assert abs(share - 2 / 3) < 4 * np.sqrt(2 / 9 / 3000)
    assert float(jnp.max(jnp.abs(out["x"]))) <= 1.0


def test_guidance_is_the_linear_combination(fitted):
    """guidance 0 is the conditional sampler bit for bit; guidance g equals (1+g) f(y) - g f(null)
    driven by hand with the same keys."""
    from scl.families.diffusion import diffusion_spec

    cfg, family, state, knobs = fitted
    spec = diffusion_spec(cfg.model, 64, 10)
    key = jax.random.PRNGKey(5)
    k_y, k_x = jax.random.split(key)
    y = jax.random.categorical(k_y, jnp.log(state.label_counts), shape=(50,)).astype(jnp.int32)
    null = jnp.full((50,), 10, jnp.int32)
    for g in (0.0, 1.5):
        got = family.sample(key, state, 50, {**knobs, "guidance": jnp.float32(g)})
        if g == 0.0:
            fn = lambda z, t: spec.predict(state.params, z, t, y)
        else:
            fn = lambda z, t: 2.5 * spec.predict(state.params, z, t, y) - 1.5 * spec.predict(state.params, z, t, null)
        want = jnp.clip(state.shift + state.scale * spec.sample_with(fn, k_x, 50), -1, 1)
        np.testing.assert_array_equal(np.asarray(got["y"]), np.asarray(y))
        np.testing.assert_allclose(np.asarray(got["x"]), np.asarray(want), atol=1e-6 if g else 0)


def test_curation_by_class_probability_amplifies_the_class():
    """K-wise Luce choice with r = 5 P(class 4) and no real data: the rewarded class's share rises
    (its expected value is the exact Luce law of the candidates' rewards; here: strictly above the
    share it starts from by more than 4 SE after two generations)."""
    cfg = digits_cfg(curation={"rule": "luce", "K": 4, "reward": {"kind": "class_probability", "label": 4, "scale": 5.0}},
                     metrics={"names": ["class_share", "expected_reward"], "samples": 256},
                     loop={"n": 300, "generations": 2, "regime": "replace"}, seeds=2,
                     model={"family": "diffusion", **TINY, "width": 128, "depth": 2, "init_steps": 600,
                            "steps": 100, "batch_size": 64, "learning_rate": 2e-3})
    ds = scl.simulate(cfg)
    share = ds["class_share_4"].mean("seed").values
    se = np.sqrt(share[-1] * (1 - share[-1]) / (256 * 2) + share[0] * (1 - share[0]) / (256 * 2))
    assert share[-1] > share[0] + 4 * se
    assert ds["expected_reward"].mean("seed").values[-1] > ds["expected_reward"].mean("seed").values[0]


def test_classifier_rewards_are_refused_elsewhere():
    with pytest.raises(ConfigError, match="curation.reward.kind"):
        Config.from_dict(dict(truth={"kind": "gaussian"}, model={"family": "gaussian"},
                              curation={"rule": "luce", "reward": {"kind": "confidence"}}))
    with pytest.raises(ConfigError, match="curation.reward.kind"):
        digits_cfg(curation={"rule": "luce", "reward": {"kind": "distance", "target": [0, 0]}})
    with pytest.raises(ConfigError, match="curation.reward.label"):
        scl.simulate(digits_cfg(curation={"rule": "luce", "reward": {"kind": "class_probability", "label": 12}}))
    with pytest.raises(ConfigError, match="truth.kind"):
        Config.from_dict(dict(truth={"kind": "digits"}, model={"family": "gaussian"}))


@pytest.fixture(scope="module")
def sims_fitted(fitted):
    """The fixture's rows, with a SIMS auxiliary fine-tuned on 32 base samples resampled to be all
    of class 1 (aux_proportions one-hot on class 1)."""
    cfg = digits_cfg(model={"aux_samples": 32, "aux_steps": 5, "aux_proportions": [0, 1] + [0] * 8})
    source = make_source(cfg.truth)
    family = make_family(cfg.model, source)
    rows = source.sample(jax.random.PRNGKey(0), 1297)
    keep = np.concatenate([np.flatnonzero(np.asarray(rows["y"]) == 1)[:80], np.flatnonzero(np.asarray(rows["y"]) == 3)[:40]])
    x = jax.tree_util.tree_map(lambda a: a[keep], rows)
    knobs = knob_values(cfg.model)
    return cfg, family, family.init(jax.random.PRNGKey(1), x, jnp.ones((120,)), knobs), knobs


def test_sims_on_images_zero_weight_is_the_plain_conditional_sampler(fitted, sims_fitted):
    """sims_weight = neon_weight = 0: the SIMS sampler is the base's plain conditional sampler bit
    for bit; the auxiliary trained on 32 rows, all of class 1 (its exact label counts)."""
    _, plain, _, _ = fitted
    cfg, family, state, knobs = sims_fitted
    counts = np.zeros(10, np.float32)
    counts[1] = 32
    np.testing.assert_array_equal(np.asarray(state.aux.label_counts), counts)
    key = jax.random.PRNGKey(7)
    got = family.sample(key, state, 64, knobs)
    want = plain.sample(key, state.base, 64, knobs)
    np.testing.assert_array_equal(np.asarray(got["x"]), np.asarray(want["x"]))
    np.testing.assert_array_equal(np.asarray(got["y"]), np.asarray(want["y"]))


def test_sims_on_images_tilts_the_label_law_exactly(sims_fitted):
    """Guided labels follow p_b(y)^(1+w) p_a(y)^-w exactly: base shares 2/3, 1/3 on classes 1, 3;
    auxiliary all class 1, add-one smoothed: p_a = 33/42 on class 1, 1/42 on class 3. Within 4 SE
    of 4,000 draws at w = 1 (guidance away from the auxiliary moves mass to class 3)."""
    cfg, family, state, knobs = sims_fitted
    n, w = 4000, 1.0
    y = np.asarray(family.sample(jax.random.PRNGKey(8), state, n, {**knobs, "sims_weight": jnp.float32(w)})["y"])
    tilted = np.array([(2 / 3) ** (1 + w) * (33 / 42) ** -w, (1 / 3) ** (1 + w) * (1 / 42) ** -w])
    share3 = tilted[1] / tilted.sum()
    assert set(np.unique(y)) <= {1, 3}
    assert abs(np.mean(y == 3) - share3) < 4 * np.sqrt(share3 * (1 - share3) / n)
