"""model.matmul_precision: bf16 networks round like bf16, really run bf16 dot_generals, and the
default fp32 networks are exactly the pre-option ones."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scl.config import Config
from scl.families.diffusion import diffusion_spec
from scl.families.flow import flow_spec
from scl.families.flow_matching import flow_matching_spec
from scl.families.networks import MLP, TimeMLP, time_embedding

UNIT_ROUNDOFF = 2.0 ** -8          # bfloat16: 8 significant bits, round to nearest
SPECS = [("diffusion", diffusion_spec, {}), ("flow", flow_spec, {"layers": 1}),
         ("flow", flow_spec, {"layers": 1, "coupling": "spline"}), ("flow_matching", flow_matching_spec, {})]


class OldMLP(nn.Module):
    """networks.MLP as it was before the precision option (the fp32 reference)."""
    width: int
    depth: int
    out: int
    zero_last: bool = False

    @nn.compact
    def __call__(self, h):
        for _ in range(self.depth):
            h = nn.silu(nn.Dense(self.width)(h))
        init = nn.initializers.zeros if self.zero_last else nn.linear.default_kernel_init
        return nn.Dense(self.out, kernel_init=init)(h)


class OldTimeMLP(nn.Module):
    width: int
    depth: int
    out: int
    time_features: int = 16

    @nn.compact
    def __call__(self, x, t):
        h = jnp.concatenate([x, time_embedding(t, self.time_features)], -1)
        return OldMLP(self.width, self.depth, self.out, name="MLP_0")(h)


def _inputs(n=256, d=3):
    return (jax.random.normal(jax.random.PRNGKey(0), (n, d)),
            jax.random.uniform(jax.random.PRNGKey(1), (n,)))


def test_fp32_network_is_the_old_one_exactly():
    x, t = _inputs()
    new, old = TimeMLP(32, 2, 3), OldTimeMLP(32, 2, 3)
    key = jax.random.PRNGKey(2)
    assert str(jax.make_jaxpr(new.init)(key, x, t)) == str(jax.make_jaxpr(old.init)(key, x, t))
    params = jax.eval_shape(new.init, key, x, t)
    assert str(jax.make_jaxpr(new.apply)(params, x, t)) == str(jax.make_jaxpr(old.apply)(params, x, t))

    @jax.jit
    def both(key):
        p = new.init(key, x, t)
        return new.apply(p, x, t), old.apply(p, x, t)
    np.testing.assert_array_equal(*both(key))
    m_new, m_old = MLP(16, 3, 4, zero_last=True), OldMLP(16, 3, 4, zero_last=True)
    p = jax.eval_shape(m_new.init, jax.random.PRNGKey(3), x)
    assert str(jax.make_jaxpr(m_new.apply)(p, x)) == str(jax.make_jaxpr(m_old.apply)(p, x))


def test_bf16_output_within_bf16_rounding(depth=2):
    """Each layer rounds its input and kernel to bf16 (relative u = 2^-8 each) and its hidden
    output too: the rms error relative to the output's rms is of order u per layer. Bound: 3u per
    layer (measured 1.0-2.0u in all for depth 1-3, width 16-256); and it is not zero (bf16 ran)."""
    x, t = _inputs()
    f32, b16 = TimeMLP(64, depth, 2), TimeMLP(64, depth, 2, dtype=jnp.bfloat16)

    @jax.jit
    def both(key):
        p = f32.init(key, x, t)
        return f32.apply(p, x, t), b16.apply(p, x, t)
    a, b = both(jax.random.PRNGKey(2))
    assert b.dtype == jnp.float32                       # the bf16 output is cast back to float32
    b16_params = jax.eval_shape(b16.init, jax.random.PRNGKey(2), x, t)
    assert {p.dtype for p in jax.tree_util.tree_leaves(b16_params)} == {jnp.dtype(jnp.float32)}
    rel = float(jnp.sqrt(jnp.mean((a - b) ** 2) / jnp.mean(a ** 2)))
    assert UNIT_ROUNDOFF / 8 < rel < 3 * UNIT_ROUNDOFF * (depth + 1)


def _dots(jaxpr):
    """Every dot_general equation in a closed jaxpr, sub-jaxprs (scan, custom_jvp, pjit) included."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append(eqn)
        for sub in jax.core.jaxprs_in_params(eqn.params):
            out.extend(_dots(sub))
    return out


@pytest.mark.parametrize("family,make_spec,extra", SPECS)
def test_training_step_dtype_path(family, make_spec, extra):
    """bf16: every dot_general of the loss and its gradient takes bf16 operands, the gradient
    reaching the float32 params is float32; fp32: no bf16 anywhere in the program."""
    z = jax.random.normal(jax.random.PRNGKey(1), (64, 2))
    dots = {}
    for precision in ("fp32", "bf16"):
        cfg = Config.from_dict(dict(truth={"kind": "eight_gaussians"}, metrics={"names": ["sliced_w2"]},
                                    model={"family": family, "width": 16, "depth": 2,
                                           "matmul_precision": precision, **extra}))
        spec = make_spec(cfg.model, 2)
        params = jax.eval_shape(spec.init, jax.random.PRNGKey(0))      # shapes only: nothing runs
        step = jax.value_and_grad(spec.loss)
        closed = jax.make_jaxpr(step)(params, jax.random.PRNGKey(2), z)
        dots[precision] = _dots(closed.jaxpr)
        grads = jax.eval_shape(step, params, jax.random.PRNGKey(2), z)[1]
        assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(grads))
        if precision == "fp32":
            assert "bf16" not in str(closed)
    assert len(dots["bf16"]) == len(dots["fp32"]) > 0
    for eqn in dots["bf16"]:
        assert [v.aval.dtype for v in eqn.invars] == [jnp.bfloat16, jnp.bfloat16], eqn
    for eqn in dots["fp32"]:
        assert [v.aval.dtype for v in eqn.invars] == [jnp.float32, jnp.float32], eqn
