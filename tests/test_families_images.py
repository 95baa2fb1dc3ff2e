"""The image networks of the neural families: the U-Net (model.network: unet) and EMA weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scl.config import Config, ConfigError
from scl.data import make_source
from scl.families import make_family
from scl.families.diffusion import diffusion_spec
from scl.families.neural import EmaState, NeuralSpec, OPTIMISER, ema_init, train
from scl.families.unet import UNet
from scl.options import knob_values

TINY_UNET = {"network": "unet", "channels": [4, 8], "init_steps": 50, "steps": 2, "batch_size": 32,
             "timesteps": 50, "sample_steps": 3, "learning_rate": 3e-3}


def digits_cfg(**model):
    model = {"family": "diffusion", **TINY_UNET, **model}
    if model["family"] != "diffusion":
        del model["timesteps"]
    return Config.from_dict(dict(
        seeds=1, truth={"kind": "digits"}, model=model,
        loop={"n": 200, "generations": 1, "regime": "replace"},
        metrics={"names": ["class_entropy"], "samples": 64}, run={"progress": False}))


def check_rows_independent_and_conditioned(apply, params, D, null):
    """Each row's output depends on its own row, time and label only (GroupNorm is per example),
    and the label (0, 1 or the null label) changes it."""
    z = jnp.tile(jax.random.normal(jax.random.PRNGKey(1), (1, D)), (4, 1))
    t, y = jnp.full((4,), 0.3), jnp.array([0, 1, null, 0])
    out = apply(params, z, t, y)
    assert out.shape == (4, D) and out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out[3]), np.asarray(out[0]), rtol=1e-6, atol=1e-6)
    moved = apply(params, z.at[1:].multiply(-2.0), t.at[1:].set(0.9), y)   # rows 1..3 changed
    np.testing.assert_allclose(np.asarray(moved[0]), np.asarray(out[0]), rtol=1e-6, atol=1e-6)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert float(jnp.max(jnp.abs(out[a] - out[b]))) > 1e-3


def numpy_params(net, D, seed=0):
    """Parameters of ``net`` at the shapes of its init, drawn by numpy (LeCun-scaled normal
    kernels and embeddings, zero biases, unit GroupNorm scales): compiling flax's init of a
    four-level U-Net takes ~10 s on CPU, the forward pass ~2 s."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), jnp.zeros((1, D)), jnp.zeros((1,)),
                            jnp.zeros((1,), jnp.int32))

    def draw(path, leaf):
        name = path[-1].key
        if name in ("bias", "scale"):
            return jnp.full(leaf.shape, 1.0 if name == "scale" else 0.0, jnp.float32)
        return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1])), jnp.float32)
    return jax.tree_util.tree_map_with_path(draw, shapes)


def test_unet_on_28x28_images_with_odd_levels():
    """28x28x1 rows through four levels, 28 -> 14 -> 7 -> 4 (the odd 7 rounds up, and the way
    back resizes 4 -> 7): [n, 784] -> [n, 784], rows independent, labels matter."""
    net = UNet((28, 28, 1), (4, 4, 8, 8), num_classes=3)
    params = numpy_params(net, 784)
    check_rows_independent_and_conditioned(jax.jit(net.apply), params, 784, 3)


def test_unet_refused_on_vector_rows():
    with pytest.raises(ConfigError, match="model.network"):
        Config.from_dict(dict(truth={"kind": "gaussian", "dim": 2}, model={"family": "flow_matching", "network": "unet"},
                              loop={"n": 64, "generations": 1}, run={"progress": False}))


@pytest.fixture(scope="module")
def source():
    return make_source(digits_cfg().truth)


@pytest.fixture(scope="module")
def digits_unet(source):
    """A tiny U-Net (4, 8 channels) diffusion trained on 512 standardised digits for 50 steps
    from numpy-drawn parameters, with an EMA (decay 0.9): (cfg, spec, params, losses [50], ema, rows)."""
    cfg = digits_cfg()
    rows = source.sample(jax.random.PRNGKey(0), 512)
    spec = diffusion_spec(cfg.model, 64, 10, (8, 8, 1))
    p0 = numpy_params(UNet((8, 8, 1), (4, 8), num_classes=10), 64)
    z = (rows["x"] - jnp.mean(rows["x"])) / jnp.std(rows["x"])
    params, _, losses, ema = jax.jit(lambda p, k: train(
        spec, k, p, OPTIMISER.init(p), z, jnp.ones(512), knob_values(cfg.model), 50, 32, rows["y"], 0.1,
        ema_init(p), 0.9))(p0, jax.random.PRNGKey(1))
    return cfg, spec, params, np.asarray(losses), ema, rows


@pytest.mark.slow   # the trained digits U-Net fixture: ~50 s to compile and train on 2 cores
@pytest.mark.parametrize("family", ["diffusion", "flow_matching"])
def test_unet_families_build_on_image_rows(family, source, digits_unet):
    """make_family with network: unet traces (eval_shape: no compile) to a state whose network is
    the U-Net of the truth's 8x8x1 images, its EMA the same pytree."""
    rows = digits_unet[5]
    cfg = digits_cfg(family=family, ema=0.99)
    fam = make_family(cfg.model, source)
    state = jax.eval_shape(lambda k: fam.init(k, rows, jnp.ones(512), knob_values(cfg.model)), jax.random.PRNGKey(0))
    want = jax.eval_shape(UNet((8, 8, 1), (4, 8), num_classes=10).init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 64)), jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))
    assert jax.tree_util.tree_structure(state.params) == jax.tree_util.tree_structure(want)
    assert jax.tree_util.tree_map(lambda a: a.shape, state.ema.params) == jax.tree_util.tree_map(lambda a: a.shape, want)


@pytest.mark.slow   # the trained digits U-Net fixture: ~50 s to compile and train on 2 cores
def test_unet_diffusion_loss_decreases_on_digits(digits_unet):
    """The mean loss of the last 10 of 50 steps is well below the first 10's."""
    losses, ema = digits_unet[3], digits_unet[4]
    assert losses.shape == (50,) and np.all(np.isfinite(losses))
    assert losses[-10:].mean() < 0.7 * losses[:10].mean(), (losses[:10].mean(), losses[-10:].mean())
    assert int(ema.count) == 50


@pytest.mark.slow   # the trained digits U-Net fixture: ~50 s to compile and train on 2 cores
def test_unet_on_8x8_digits_is_class_conditional(digits_unet):
    spec, params = digits_unet[1], digits_unet[2]
    check_rows_independent_and_conditioned(jax.jit(spec.predict), params, 64, 10)


def _toy_spec():
    """A loss that ignores its key and rows: Adam's trajectory theta_1, theta_2, ... is fixed."""
    def loss(params, key, z):
        return jnp.sum((params["a"] - jnp.array([3.0, -1.0])) ** 2) + jnp.sum(params["b"] ** 4)
    return NeuralSpec(init=lambda k: {"a": jnp.zeros(2), "b": jnp.ones((2, 2))}, loss=loss, sample=None)


def test_ema_is_the_bias_corrected_average_of_the_steps():
    """E_k = sum_j (1 - d) d^(k-j) theta_j / (1 - d^k) (float64, from the trajectory theta_j
    re-run one step at a time), and the EMA does not change training by a bit."""
    spec, d, k = _toy_spec(), 0.8, 6
    p0 = spec.init(None)
    z, w = jnp.zeros((4, 2)), jnp.ones(4)
    knobs = {"learning_rate": 0.1, "grad_clip": 10.0}
    key = jax.random.PRNGKey(0)
    params, opt_state, losses, ema = train(spec, key, p0, OPTIMISER.init(p0), z, w, knobs, k, 2,
                                           ema=ema_init(p0), ema_decay=d)
    thetas, p, s = [], p0, OPTIMISER.init(p0)
    for _ in range(k):
        p, s, _ = train(spec, key, p, s, z, w, knobs, 1, 2)
        thetas.append(p)
    weights = np.array([(1 - d) * d ** (k - j) for j in range(1, k + 1)]) / (1 - d ** k)
    for name in ("a", "b"):
        want = sum(wj * np.asarray(th[name], np.float64) for wj, th in zip(weights, thetas))
        np.testing.assert_allclose(np.asarray(ema.params[name]), want, rtol=1e-6, atol=1e-7)
    assert int(ema.count) == k
    plain = train(spec, key, p0, OPTIMISER.init(p0), z, w, knobs, k, 2)
    for a, b in zip(jax.tree_util.tree_leaves((params, opt_state, losses)), jax.tree_util.tree_leaves(plain)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow   # the trained digits U-Net fixture: ~50 s to compile and train on 2 cores
def test_ema_off_adds_nothing_and_on_drives_the_sampler(source, digits_unet):
    """ema null: the state carries () (no leaves beyond the fields before EMA; that training is
    unchanged bit for bit is the toy test above, and tests/test_families_neural.py and
    tests/test_image_loop.py); ema on: warm start continues the count (init_steps + steps), and
    the sampler reads the EMA's parameters only."""
    rows = digits_unet[5]
    tiny = {"network": "mlp", "width": 16, "depth": 1, "init_steps": 5, "steps": 3}
    w = jnp.ones(512)
    cfg = digits_cfg(**tiny)
    fam, knobs = make_family(cfg.model, source), knob_values(cfg.model)
    off = jax.eval_shape(lambda k: fam.init(k, rows, w, knobs), jax.random.PRNGKey(2))   # traced only
    assert off.ema == () and len(jax.tree_util.tree_leaves(off)) == len(jax.tree_util.tree_leaves(off[:6]))
    fam = make_family(digits_cfg(**tiny, ema=0.9).model, source)
    first, on = jax.jit(lambda k1, k2: (lambda s: (s, fam.fit(k2, s, rows, w, knobs)))(fam.init(k1, rows, w, knobs)))(
        jax.random.PRNGKey(2), jax.random.PRNGKey(3))
    assert int(first.ema.count) == 5
    assert isinstance(on.ema, EmaState) and int(on.ema.count) == 8
    sample = jax.jit(lambda s: fam.sample(jax.random.PRNGKey(4), s, 16, knobs))   # the ema-on family
    got = sample(on)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, on.params)
    same = sample(on._replace(params=zeros))                                # trained params unused
    other = sample(on._replace(ema=on.ema._replace(params=on.params)))     # the EMA's are read
    np.testing.assert_array_equal(np.asarray(got["x"]), np.asarray(same["x"]))
    np.testing.assert_array_equal(np.asarray(got["y"]), np.asarray(same["y"]))
    assert float(jnp.max(jnp.abs(other["x"] - got["x"]))) > 1e-4
