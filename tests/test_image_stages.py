"""Image-row stages: the per-class k-means corrector (scl.correction_kmeans_class) on hand-made
rows and on the embedded digits; known values (exact k-means, brute-force nearest centres)."""
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl.catalog  # noqa: F401
from scl.config import Config
from scl.correction_kmeans_class import (KMeansPerClassCorrection, correct_rows, fit_class_centres,
                                         make_kmeans_per_class, round_to_levels)
from scl.data.images import load_digits
from scl.errors import ConfigError
from scl.options import static
from scl.registry import register_family
from scl.families.base import Family


@dataclass(frozen=True)
class ClassGaussianModel:
    """Test-only image family: per class, independent Gaussian pixels (clipped to [-1, 1])."""

    tag_key = "family"
    name = "test_class_gaussian"
    classes: int = static(10, "classes")


@register_family("test_class_gaussian", ClassGaussianModel)
def make_class_gaussian(o, source):
    K = o.classes

    def fit(key, state, rows, w, knobs):
        x, y = rows["x"], rows["y"]
        m = jax.nn.one_hot(y, K) * w[:, None]                        # [n, K]
        count = m.sum(0)
        mean = (m.T @ x) / jnp.maximum(count, 1.0)[:, None]
        var = (m.T @ x ** 2) / jnp.maximum(count, 1.0)[:, None] - mean ** 2
        return {"mean": mean, "std": jnp.sqrt(jnp.maximum(var, 1e-6)), "share": count / count.sum()}

    def sample(key, state, n, knobs):
        ky, kx = jax.random.split(key)
        y = jax.random.categorical(ky, jnp.log(state["share"] + 1e-30), shape=(n,)).astype(jnp.int32)
        x = state["mean"][y] + state["std"][y] * jax.random.normal(kx, (n, state["mean"].shape[1]))
        return {"x": jnp.clip(x, -1.0, 1.0), "y": y}

    return Family(lambda key, x, w, knobs: fit(key, None, x, w, knobs), fit, sample)


def _hand_made():
    """Class 0: two tight pairs around (0, 0) and (1, 1); class 1: pairs around (-1, 1), (1, -1);
    class 2: one row (fewer than k = 2); class 3: absent."""
    x = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [1.0, 0.9],
                  [-1.0, 1.0], [-0.9, 1.0], [1.0, -1.0], [0.9, -1.0], [0.5, 0.5]], np.float32)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2], np.int32)
    return {"x": jnp.asarray(x), "y": jnp.asarray(y)}


def _sorted(c):
    c = np.asarray(c)
    return c[np.lexsort(c.T[::-1])]


def test_per_class_centres_are_the_exact_k_means_of_each_class():
    rows = _hand_made()
    st = fit_class_centres(jax.random.PRNGKey(3), rows, 4, 2, 10)
    np.testing.assert_allclose(_sorted(st["centres"][0]), [[0.05, 0.0], [1.0, 0.95]], atol=1e-6)
    np.testing.assert_allclose(_sorted(st["centres"][1]), [[-0.95, 1.0], [0.95, -1.0]], atol=1e-6)
    np.testing.assert_allclose(st["centres"][2], [[0.5, 0.5], [0.5, 0.5]], atol=1e-6)   # one row, k = 2
    assert list(np.asarray(st["present"])) == [True, True, True, False]


def test_strength_and_share_one_snap_to_the_nearest_same_class_centre_zero_is_identity():
    rows = _hand_made()
    st = fit_class_centres(jax.random.PRNGKey(0), rows, 4, 2, 10)
    syn = {"x": jnp.asarray([[0.9, 0.9], [0.9, 0.9], [0.0, 0.0], [3.0, 3.0]], jnp.float32),
           "y": jnp.asarray([0, 1, 2, 3], jnp.int32)}
    key = jax.random.PRNGKey(1)
    out = correct_rows(key, st, syn, 1.0, 1.0)
    # class 0 -> (1, 0.95); class 1 -> the nearer of (-0.95, 1), (0.95, -1) is a tie-free (-0.95, 1)? no:
    # |(0.9,.9)-(-.95,1)|^2 = 3.4325, |(0.9,.9)-(.95,-1)|^2 = 3.6125 -> (-0.95, 1); class 3 absent: unchanged
    np.testing.assert_allclose(out["x"], [[1.0, 0.95], [-0.95, 1.0], [0.5, 0.5], [3.0, 3.0]], atol=1e-6)
    assert (np.asarray(out["y"]) == np.asarray(syn["y"])).all()
    half = correct_rows(key, st, syn, 0.5, 1.0)
    np.testing.assert_allclose(half["x"], 0.5 * (np.asarray(syn["x"]) + np.asarray(out["x"])), atol=1e-6)
    for s, sh in ((0.0, 1.0), (1.0, 0.0)):
        np.testing.assert_array_equal(correct_rows(key, st, syn, s, sh)["x"], syn["x"])


@pytest.mark.slow   # 21 s; the exact per-class k-means test covers the fit
def test_digits_centres_rounded_on_the_pixel_grid_and_snapping_matches_brute_force():
    a = load_digits()
    real = {"x": jnp.asarray(a.train_x[:300]), "y": jnp.asarray(a.train_y[:300])}
    opts = KMeansPerClassCorrection(k=4, iterations=30, round_to=17)
    from scl.data.digits import DigitsTruth, make_digits
    from scl.stages import StageContext

    source = make_digits(DigitsTruth())
    stage = make_kmeans_per_class(opts, StageContext(source, None, 0, 300))
    st = jax.jit(stage.init)(jax.random.PRNGKey(0), real)
    c = np.asarray(st["centres"])                                    # [10, 4, 64]
    levels = (c + 1.0) * 8.0                                         # 17 levels: 0..16
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-5)
    x, y = np.asarray(real["x"]), np.asarray(real["y"])
    for k in range(10):                                              # inside each class's pixel box
        assert (c[k] >= x[y == k].min(0) - 1e-6).all() and (c[k] <= x[y == k].max(0) + 1e-6).all()
    # unrounded: a Lloyd fixed point, each centre the mean of the class rows nearest to it
    raw = fit_class_centres(jax.random.PRNGKey(0), real, 10, 4, 60)["centres"]
    for k in range(10):
        xk = x[y == k]
        j = np.argmin(((xk[:, None] - np.asarray(raw[k])[None]) ** 2).sum(-1), 1)
        for i in np.unique(j):
            np.testing.assert_allclose(raw[k][i], xk[j == i].mean(0), atol=1e-4)
    syn = {"x": jnp.asarray(a.heldout_x[:50]), "y": jnp.asarray(a.heldout_y[:50])}
    _, out, _ = stage.apply(jax.random.PRNGKey(2), st, syn, jnp.ones(50), {"strength": 1.0, "share": 1.0})
    sx, sy = np.asarray(syn["x"]), np.asarray(syn["y"])
    want = np.stack([c[sy[i]][np.argmin(((c[sy[i]] - sx[i]) ** 2).sum(-1))] for i in range(50)])
    np.testing.assert_allclose(out["x"], want, atol=1e-6)


def test_round_to_levels_lands_on_the_grid():
    x = jnp.linspace(-1.0, 1.0, 101)
    r = np.asarray(round_to_levels(x, 256))
    np.testing.assert_allclose((r + 1) * 127.5, np.round((r + 1) * 127.5), atol=1e-4)
    assert np.abs(r - np.asarray(x)).max() <= 1.0 / 255 + 1e-6


def test_config_refuses_vector_truths_and_k_above_loop_n():
    base = {"truth": {"kind": "digits"}, "model": {"family": "test_class_gaussian"}, "loop": {"n": 20},
            "correction": {"kind": "kmeans_per_class", "k": 16}}
    assert Config.from_dict(base).correction.k == 16
    with pytest.raises(ConfigError) as e:
        Config.from_dict({**base, "correction": {"kind": "kmeans_per_class", "k": 21}})
    assert e.value.field == "correction.k"
    with pytest.raises(ConfigError) as e:
        Config.from_dict({**base, "truth": {"kind": "gaussian", "dim": 2}, "model": {"family": "gaussian"}})
    assert e.value.field == "correction.kind"


from scl.registry import register_metric  # noqa: E402


@register_metric("test_pixel_mean", doc="test only: mean pixel of the model's samples", needs=("model",),
                 long_name="mean pixel of the model's samples", units="1")
def make_test_pixel_mean(ctx):
    return lambda probe, state, knobs: jnp.mean(probe.model["x"])


def test_image_grid_tiles_images_with_their_class_labels():
    from scl.samples import image_grid, tile

    a = load_digits()
    rows = {"x": a.heldout_x[:10], "y": a.heldout_y[:10]}
    mosaic = tile(rows["x"], (8, 8, 1), cols=8)
    assert mosaic.shape == (2 * 9 - 1, 8 * 9 - 1, 1)
    np.testing.assert_allclose(mosaic[9:17, 9:17, 0], (a.heldout_x[9].reshape(8, 8) + 1) / 2)   # image 9
    fig = image_grid([("truth (held-out)", rows), ("K=2", rows)], (8, 8, 1), "toy")
    axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in axes] == ["truth (held-out)", "K=2"]
    assert [t.get_text() for t in axes[0].texts] == [str(v) for v in a.heldout_y[:10]]


def test_scl_run_on_digits_writes_sample_grids_of_generations_0_middle_and_last(tmp_path):
    import yaml

    from scl import cli

    cfg = {"name": "digits_kmeans", "seeds": 1, "truth": {"kind": "digits"},
           "model": {"family": "test_class_gaussian"},
           "loop": {"generations": 2, "n": 100, "regime": "replace"},
           "correction": {"kind": "kmeans_per_class", "k": 2, "iterations": 5, "round_to": 17},
           "sweep": {"correction.strength": [0.0, 1.0]},
           "metrics": {"names": ["test_pixel_mean"], "samples": 64},
           "run": {"chunk_size": 2, "progress": False}, "checkpoint": {"asynchronous": False}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli.main(["run", str(path), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("samples_g*.png")) == \
        ["samples_g0000.png", "samples_g0001.png", "samples_g0002.png"]
    from scl.results import load_results

    ds = load_results(out)
    assert np.isfinite(ds.test_pixel_mean.values).all()
