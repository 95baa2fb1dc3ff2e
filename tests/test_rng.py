"""scl.rng: exact bounded integers and the unrolled CPU threefry (same bits as JAX's default)."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scl.engine  # noqa: F401
from scl.rng import _mul_hi_lo, uniform_below, use_unrolled_threefry


def test_mul_hi_lo_is_the_64_bit_product():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 2 ** 32, 100_000, dtype=np.uint64)
    c = rng.integers(1, 2 ** 31, 100_000, dtype=np.uint64)
    b[:3], c[:3] = 2 ** 32 - 1, [2 ** 31 - 1, 1, 2 ** 16]
    hi, lo = _mul_hi_lo(jnp.asarray(b, jnp.uint32), jnp.asarray(c, jnp.uint32))
    np.testing.assert_array_equal(np.asarray(hi, np.uint64), (b * c) >> np.uint64(32))
    np.testing.assert_array_equal(np.asarray(lo, np.uint64), (b * c) & np.uint64(2 ** 32 - 1))


@pytest.mark.parametrize("bound", [1, 2, 7, 1000])
def test_uniform_below_small_bounds_are_uniform(bound):
    """Frequencies of 400k draws match 1/bound (chi-square, p > 1e-4); nothing outside range."""
    from scipy import stats
    v = np.asarray(uniform_below(jax.random.PRNGKey(bound), bound, (400_000,)))
    assert v.min() >= 0 and v.max() < bound
    if bound > 1:
        counts = np.bincount(v, minlength=bound)
        assert stats.chisquare(counts).pvalue > 1e-4


def test_uniform_below_rejection_removes_the_bias():
    """bound = 3 * 2^29: a word maps to 3, 3, 2 values in turn (2^32 / bound = 8/3), so without
    the rejection step v mod 3 = 2 would have probability 1/4; exact draws give 1/3."""
    bound = 3 * 2 ** 29
    v = np.asarray(uniform_below(jax.random.PRNGKey(1), bound, (300_000,)), np.int64)
    share = np.mean(v % 3 == 2)
    assert abs(share - 1 / 3) < 4 * np.sqrt(2 / 9 / v.size)
    assert v.min() >= 0 and v.max() < bound


def test_uniform_below_per_element_bounds_and_vmap():
    """Bounds may differ per element (Floyd's j + 1) and be traced under vmap."""
    bounds = jnp.array([1, 2, 3, 50, 2 ** 20])
    v = np.asarray(jax.vmap(lambda k: uniform_below(k, bounds, (5,)))(jax.random.split(jax.random.PRNGKey(2), 20_000)))
    assert np.all(v >= 0) and np.all(v < np.asarray(bounds))
    np.testing.assert_allclose(v.mean(0), (np.asarray(bounds) - 1) / 2, rtol=0.03, atol=0.01)


BITS_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np, sys
import scl
from scl.engine import build_program
build_program(scl.Config.from_dict({"loop": {"generations": 1}}))   # registers the lowering, as every run does
k = jax.random.PRNGKey(7)
out = [jax.jit(lambda k: jax.random.bits(k, (1001,)))(k),
       jax.jit(lambda k: jax.random.normal(jax.random.fold_in(k, 3), (64,)))(k),
       jax.jit(jax.vmap(lambda k: jax.random.split(k, 5)))(jax.random.split(k, 4))]
looped = " while(" in jax.jit(lambda k: jax.random.bits(k, (8,))).lower(k).compile().as_text()
np.savez(sys.argv[1], *[np.asarray(o) for o in out], looped=looped)
"""


def test_unrolled_threefry_gives_jaxs_bits(tmp_path):
    """With the unrolled CPU lowering in use, jitted bits, normals and splits equal those of a
    process that keeps JAX's rolled lowering (SCL_ROLLED_THREEFRY=1)."""
    assert use_unrolled_threefry()
    hlo = jax.jit(lambda k: jax.random.bits(k, (8,))).lower(jax.random.PRNGKey(0)).compile().as_text()
    assert " while(" not in hlo                   # the hash is straight-line code, not a loop
    files = {}
    for name, env in [("unrolled", {}), ("rolled", {"SCL_ROLLED_THREEFRY": "1"})]:
        files[name] = tmp_path / f"{name}.npz"
        subprocess.run([sys.executable, "-c", BITS_SCRIPT, str(files[name])], check=True,
                       env={**os.environ, **env})
    a, b = np.load(files["unrolled"]), np.load(files["rolled"])
    assert not a["looped"] and b["looped"]        # the two processes did lower threefry differently
    for key in a.files:
        if key != "looped":
            np.testing.assert_array_equal(a[key], b[key])
