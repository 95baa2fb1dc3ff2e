import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def within_4se(samples, expected, axis=0):
    """Monte Carlo check used across the suite: |mean - expected| <= 4 SE (SE = sd / sqrt(R))."""
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean(axis)
    se = samples.std(axis, ddof=1) / np.sqrt(samples.shape[axis])
    ok = np.abs(mean - expected) <= 4 * se
    assert np.all(ok), f"mean {mean} vs theory {expected} (4 SE = {4 * se})"
    return mean, se


@pytest.fixture
def check_4se():
    return within_4se


@pytest.fixture(scope="module")
def jax_compile_cache(tmp_path_factory):
    """A persistent JAX compilation cache for one test module, shared with the ``scl``
    subprocesses it starts (they read the same directory); the previous settings are restored."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    path = str(tmp_path_factory.mktemp("jax_cache"))
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {n: getattr(jax.config, n) for n in names}
    for n, v in zip(names, (path, 0.0, 0)):
        jax.config.update(n, v)
    cc.reset_cache()
    yield path
    for n, v in old.items():
        jax.config.update(n, v)
    cc.reset_cache()
