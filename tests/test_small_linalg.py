"""scl.small_linalg: unrolled tiny-matrix algebra equals numpy and rounds the same at any batch size."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scl.small_linalg import cholesky, matmul


@pytest.mark.parametrize("d", [1, 2, 3, 4, 6])
def test_cholesky_and_matmul_equal_numpy(d):
    rng = np.random.default_rng(d)
    a = rng.normal(size=(5, d, d))
    spd = (a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)).astype(np.float32)
    np.testing.assert_allclose(cholesky(jnp.asarray(spd)), np.linalg.cholesky(spd), rtol=2e-5, atol=2e-5)
    b = rng.normal(size=(5, d, 3)).astype(np.float32)
    np.testing.assert_allclose(matmul(jnp.asarray(spd), jnp.asarray(b)), spd @ b, rtol=2e-5, atol=2e-5)


def test_singular_pivot_keeps_the_rest_of_the_factor():
    low = np.asarray(cholesky(jnp.array([[4.0, 0.0], [0.0, 0.0]])))
    assert low[0, 0] == 2.0 and low[1, 0] == 0.0 and low[1, 1] == 0.0


def test_same_bits_alone_and_in_a_batch():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(37, 3, 3)).astype(np.float32)
    spd = jnp.asarray(a @ np.swapaxes(a, -1, -2) + np.eye(3, dtype=np.float32))
    batched = jax.jit(jax.vmap(lambda m: matmul(cholesky(m), m)))(spd)
    alone = jax.jit(lambda m: matmul(cholesky(m), m))(spd[11])
    np.testing.assert_array_equal(batched[11], alone)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 6])
def test_lower_triangular_places_entries_row_major(d):
    """Strictly lower entries in np.tril_indices order, the diagonal on it, zeros above; the
    unrolled form (d <= 4) and the scatter form (d > 4) agree with NumPy."""
    from scl.small_linalg import lower_triangular
    below = np.arange(1, d * (d - 1) // 2 + 1, dtype=np.float32)
    diag = -np.arange(1, d + 1, dtype=np.float32)
    ref = np.diag(diag)
    ref[np.tril_indices(d, -1)] = below
    np.testing.assert_array_equal(np.asarray(lower_triangular(jnp.asarray(below), jnp.asarray(diag))), ref)
