"""Image metrics in the shipped network's feature space, and the network itself (digits)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import scl
from scl import features
from scl.config import Config, ConfigError
from scl.data import make_source
from scl.data.digits import DigitsTruth
from scl.data.images import load_digits
from scl.metrics.classes import class_shares
from scl.metrics.feature_space import frechet_distance, manifold_scores, mean_pairwise_distance


@pytest.fixture(scope="module")
def digits():
    return make_source(DigitsTruth())


def test_shipped_network_heldout_accuracy():
    arrays = load_digits()
    net = features.load("digits", arrays.image_shape, arrays.num_classes)
    pred = np.argmax(np.asarray(net.apply(jnp.asarray(arrays.heldout_x))["logits"]), 1)
    assert np.mean(pred == arrays.heldout_y) >= 0.97


def test_frechet_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 0.5
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb - 2 * np.real(scipy.linalg.sqrtm(ca @ cb)))
    assert float(frechet_distance(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))) == pytest.approx(ref, rel=2e-3)


def brute_force(real, fake, k):
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    r_real = np.sort(d_rr, 1)[:, k]
    r_fake = np.sort(d_ff, 1)[:, k]
    d = np.linalg.norm(real[:, None] - fake[None], axis=-1)       # [real, fake]
    return {"precision": np.mean([(d[:, j] <= r_real).any() for j in range(len(fake))]),
            "recall": np.mean([(d[i] <= r_fake).any() for i in range(len(real))]),
            "density": sum((d[:, j] <= r_real).sum() for j in range(len(fake))) / (k * len(fake)),
            "coverage": np.mean([(d[i] <= r_real[i]).any() for i in range(len(real))])}


def test_manifold_scores_match_brute_force():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(60, 3)).astype(np.float32)
    fake = (rng.normal(size=(50, 3)) * 1.5 + 0.3).astype(np.float32)
    got = manifold_scores(jnp.asarray(real), jnp.asarray(fake), 5)
    ref = brute_force(real.astype(np.float64), fake.astype(np.float64), 5)
    for name in ref:
        assert float(got[name]) == pytest.approx(ref[name], abs=1e-6), name


def test_real_against_real(digits):
    """Train rows against held-out rows: precision, recall ~ 1, and the Frechet distance is the
    finite-sample bias, which shrinks like 1/n (halving n doubles it): within noise of 0."""
    def fd(n, seed):
        a = digits.features(digits.sample(jax.random.PRNGKey(seed), n))["features"]
        b = digits.features(digits.heldout(jax.random.PRNGKey(100 + seed), n))["features"]
        return float(frechet_distance(a, b)), manifold_scores(b, a, 5)

    big, scores = fd(500, 0)
    small = np.mean([fd(250, s)[0] for s in range(3)])
    assert 1.5 < small / big < 2.7
    assert float(scores["precision"]) > 0.93 and float(scores["recall"]) > 0.93
    assert 0.9 < float(scores["density"]) < 1.15 and float(scores["coverage"]) > 0.93


def test_one_repeated_image_has_no_recall_or_diversity(digits):
    real = digits.features(digits.heldout(jax.random.PRNGKey(0), 300))["features"]
    one = digits.sample(jax.random.PRNGKey(1), 1)
    fake = digits.features({"x": jnp.repeat(one["x"], 300, 0), "y": jnp.repeat(one["y"], 300)})["features"]
    scores = manifold_scores(real, fake, 5)
    assert float(scores["recall"]) < 0.02
    assert float(mean_pairwise_distance(fake)) == pytest.approx(0.0, abs=1e-4)


def test_class_shares_follow_chosen_proportions(digits):
    """Rows made of chosen classes in chosen counts: the shares are the classifier's argmax counts,
    exactly, and they match the chosen proportions up to the classifier's few mistakes."""
    arrays = load_digits()
    counts = {0: 40, 3: 30, 7: 10}
    idx = np.concatenate([np.flatnonzero(arrays.heldout_y == c)[:m] for c, m in counts.items()])
    logits = np.asarray(digits.features({"x": jnp.asarray(arrays.heldout_x[idx]), "y": None})["logits"])
    shares = np.asarray(class_shares(jnp.asarray(logits), 10))
    np.testing.assert_array_equal(shares, (np.bincount(logits.argmax(1), minlength=10) / np.float32(len(idx))).astype(np.float32))
    taken = np.bincount(arrays.heldout_y[idx], minlength=10) / len(idx)
    np.testing.assert_allclose(shares, taken, atol=0.03)


def test_metrics_through_the_loop_and_refusals():
    base = dict(seeds=2, truth={"kind": "digits"},
                model={"family": "diffusion", "width": 32, "depth": 1, "init_steps": 20, "steps": 5,
                       "batch_size": 32, "timesteps": 50, "sample_steps": 5},
                loop={"n": 200, "generations": 1, "regime": "replace"},
                metrics={"names": ["class_share", "class_entropy", "confidence", "precision"], "samples": 64},
                run={"progress": False})
    ds = scl.simulate(Config.from_dict(base))
    shares = sum(ds[f"class_share_{c}"] for c in range(10))
    np.testing.assert_allclose(shares.values, 1.0, atol=1e-6)
    p = np.stack([ds[f"class_share_{c}"].values for c in range(10)])
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), 0)
    np.testing.assert_allclose(ds["class_entropy"].values, entropy, atol=1e-5)
    assert ds["class_share_3"].attrs["long_name"].startswith("share of model images")
    with pytest.raises(ConfigError, match="metrics.names"):
        scl.simulate(Config.from_dict({**base, "truth": {"kind": "gaussian", "dim": 64},
                                       "metrics": {"names": ["frechet_feature_distance"]}}))
