"""The image networks of the neural families: the U-Net (model.network: unet) and EMA weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scl.config import Config, ConfigError
from scl.data import make_source
from scl.families import make_family
from scl.families.diffusion import diffusion_spec
from scl.families.neural import (EmaState, NeuralSpec, OPTIMISER, ema_init, fresh_fit, train)
from scl.families.unet import UNet
from scl.options import knob_values

TINY_UNET = {"network": "unet", "channels": [4, 8], "init_steps": 50, "steps": 2, "batch_size": 32,
             "timesteps": 50, "sample_steps": 3, "learning_rate": 3e-3}


def digits_cfg(**model):
    return Config.from_dict(dict(
        seeds=1, truth={"kind": "digits"}, model={"family": "diffusion", **TINY_UNET, **model},
        loop={"n": 200, "generations": 1, "regime": "replace"},
        metrics={"names": ["class_entropy"], "samples": 64}, run={"progress": False}))


@pytest.mark.parametrize("shape, channels", [((28, 28, 1), (4, 4, 8, 8)), ((7, 5, 3), (4, 8))])
def test_unet_rows_are_independent_and_class_conditioned(shape, channels):
    """[n, D] -> [n, D] on 28x28 images (28 -> 14 -> 7 -> 4: the odd 7 rounds up and comes back)
    and 7x5x3 (-> 4x3); each row's output depends on its own row, time and label only (GroupNorm
    is per example), and the label (0, 1 or the null label 3) changes it."""
    D = int(np.prod(shape))
    net = UNet(shape, channels, num_classes=3)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, D)), jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))
    apply = jax.jit(net.apply)
    z = jnp.tile(jax.random.normal(jax.random.PRNGKey(1), (1, D)), (4, 1))
    t, y = jnp.full((4,), 0.3), jnp.array([0, 1, 3, 0])
    out = apply(params, z, t, y)
    assert out.shape == (4, D) and out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out[3]), np.asarray(out[0]), rtol=1e-6, atol=1e-6)
    moved = apply(params, z.at[1:].multiply(-2.0), t.at[1:].set(0.9), y)   # rows 1..3 changed
    np.testing.assert_allclose(np.asarray(moved[0]), np.asarray(out[0]), rtol=1e-6, atol=1e-6)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert float(jnp.max(jnp.abs(out[a] - out[b]))) > 1e-3


def test_unet_refused_on_vector_rows():
    with pytest.raises(ConfigError, match="model.network"):
        Config.from_dict(dict(truth={"kind": "gaussian", "dim": 2}, model={"family": "flow_matching", "network": "unet"},
                              loop={"n": 64, "generations": 1}, run={"progress": False}))


@pytest.fixture(scope="module")
def digits():
    cfg = digits_cfg()
    source = make_source(cfg.truth)
    rows = source.sample(jax.random.PRNGKey(0), 512)
    return cfg, source, rows


def test_unet_diffusion_loss_decreases_on_digits(digits):
    """50 Adam steps of a tiny U-Net (4, 8 channels) diffusion: the mean loss of the last 10 steps
    is well below the first 10's (at init the eps loss is ~ D = 64 per row and more)."""
    cfg, source, rows = digits
    spec = diffusion_spec(cfg.model, 64, 10, (8, 8, 1))
    state, losses = jax.jit(lambda k: fresh_fit(spec, cfg.model, k, rows, jnp.ones(512), knob_values(cfg.model)))(
        jax.random.PRNGKey(1))
    losses = np.asarray(losses)
    assert losses.shape == (50,) and np.all(np.isfinite(losses))
    assert losses[-10:].mean() < 0.7 * losses[:10].mean(), (losses[:10].mean(), losses[-10:].mean())


def _toy_spec():
    """A loss that ignores its key and rows: Adam's trajectory theta_1, theta_2, ... is fixed."""
    def loss(params, key, z):
        return jnp.sum((params["a"] - jnp.array([3.0, -1.0])) ** 2) + jnp.sum(params["b"] ** 4)
    return NeuralSpec(init=lambda k: {"a": jnp.zeros(2), "b": jnp.ones((2, 2))}, loss=loss, sample=None)


def test_ema_is_the_bias_corrected_average_of_the_steps():
    """E_k = sum_j (1 - d) d^(k-j) theta_j / (1 - d^k) (computed in float64 from the trajectory
    re-run j = 1..k steps), and the EMA does not change training by a bit."""
    spec, d, k = _toy_spec(), 0.8, 6
    p0 = spec.init(None)
    z, w = jnp.zeros((4, 2)), jnp.ones(4)
    knobs = {"learning_rate": 0.1, "grad_clip": 10.0}
    run = lambda steps, ema=None: train(spec, jax.random.PRNGKey(0), p0, OPTIMISER.init(p0), z, w, knobs,
                                        steps, 2, ema=ema, ema_decay=d if ema is not None else None)
    params, opt_state, losses, ema = run(k, ema_init(p0))
    thetas = [run(j)[0] for j in range(1, k + 1)]
    weights = np.array([(1 - d) * d ** (k - j) for j in range(1, k + 1)]) / (1 - d ** k)
    for name in ("a", "b"):
        want = sum(wj * np.asarray(th[name], np.float64) for wj, th in zip(weights, thetas))
        np.testing.assert_allclose(np.asarray(ema.params[name]), want, rtol=1e-6, atol=1e-7)
    assert int(ema.count) == k
    plain = run(k)
    for a, b in zip(jax.tree_util.tree_leaves((params, opt_state, losses)), jax.tree_util.tree_leaves(plain)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(run(1, ema_init(p0))[3].params["a"]), np.asarray(thetas[0]["a"]))


def test_ema_off_is_bit_for_bit_and_on_drives_the_sampler(digits):
    """ema null: the state carries () (no leaves beyond the fields before EMA) and the same params as
    ema on; ema on: warm start continues the count (init_steps + steps), and sampling equals the
    ema-off sampler run on the EMA's parameters, bit for bit."""
    _, source, rows = digits
    tiny = {"network": "mlp", "width": 16, "depth": 1, "init_steps": 5, "steps": 3}
    w = jnp.ones(512)
    states = {}
    for ema in (None, 0.9):
        cfg = digits_cfg(**tiny, ema=ema)
        fam, knobs = make_family(cfg.model, source), knob_values(cfg.model)
        state = jax.jit(lambda k1, k2: fam.fit(k2, fam.init(k1, rows, w, knobs), rows, w, knobs))(
            jax.random.PRNGKey(2), jax.random.PRNGKey(3))
        states[ema] = (fam, knobs, state)
    (fam_off, knobs, off), (fam_on, _, on) = states[None], states[0.9]
    assert off.ema == () and len(jax.tree_util.tree_leaves(off)) == len(jax.tree_util.tree_leaves(off[:6]))
    for a, b in zip(jax.tree_util.tree_leaves(off[:6]), jax.tree_util.tree_leaves(on[:6])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert isinstance(on.ema, EmaState) and int(on.ema.count) == 8
    assert float(jnp.max(jnp.abs(on.ema.params["params"]["MLP_0"]["Dense_0"]["kernel"]
                                  - on.params["params"]["MLP_0"]["Dense_0"]["kernel"]))) > 0
    key = jax.random.PRNGKey(4)
    got = jax.jit(lambda s: fam_on.sample(key, s, 16, knobs))(on)
    want = jax.jit(lambda s: fam_off.sample(key, s, 16, knobs))(on._replace(params=on.ema.params, ema=()))
    np.testing.assert_array_equal(np.asarray(got["x"]), np.asarray(want["x"]))
    np.testing.assert_array_equal(np.asarray(got["y"]), np.asarray(want["y"]))
