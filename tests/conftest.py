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
