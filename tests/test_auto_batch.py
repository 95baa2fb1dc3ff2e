"""run.config_batch_size chosen from the compiled program's memory analysis (scl.auto_batch)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import scl
from scl import auto_batch
from scl.errors import ConfigError

C = 256      # 128 seeds x 2 real fractions


def _cfg(**run):
    return scl.Config.from_dict({
        "name": "auto", "seeds": 128, "seed": 1,
        "truth": {"kind": "gaussian", "dim": 2},
        "model": {"family": "gaussian"},
        "loop": {"generations": 4, "n": 20, "regime": "fresh", "real_fraction": 0.0},
        "metrics": {"names": ["w2"]},
        "sweep": {"loop.real_fraction": [0.0, 0.5]},
        "run": {"chunk_size": 4, "progress": False, **run},
    })


@pytest.fixture(scope="module")
def measured():
    """The choice with an ample limit: the probe's per-configuration bytes, no batching."""
    return auto_batch.choose_batch(_cfg(), limit=2.0**40, force=True)


def test_whole_grid_fits_under_an_ample_limit(measured):
    # per configuration: the chunk's temp buffers and its inputs/outputs, both measured > 0;
    # the output alone holds 4 generations x 1 metric x 4 bytes per configuration
    assert measured.batch_size is None and measured.configs == C
    assert measured.per_config > 0 and measured.io_per_config >= 4 * 4
    assert "none needed" in measured.message()


def test_batch_is_the_largest_power_of_two_under_the_limit(measured):
    limit = measured.need(C) / 2.5
    choice = auto_batch.choose_batch(_cfg(), limit=limit)
    b = choice.batch_size
    expected = 2 ** int(math.log2((limit - 2 * measured.io_per_config * C) / measured.per_config))
    assert b == expected and 1 <= b < C
    assert choice.need(b) <= limit < choice.need(2 * b)
    assert f"config_batch_size {b} chosen" in choice.message() and f"2^{int(math.log2(b))}" in choice.message()


def test_batched_run_equals_unbatched_and_says_what_it_chose(measured, monkeypatch, capsys):
    whole = scl.simulate(_cfg())
    assert "config_batch_size" not in capsys.readouterr().err        # fits: nothing chosen
    limit = measured.need(C) / 2.5
    monkeypatch.setattr(auto_batch, "memory_limit", lambda cfg: (limit, "test limit"))
    batched = scl.simulate(_cfg())
    err = capsys.readouterr().err
    b = auto_batch.choose_batch(_cfg(), limit=limit).batch_size
    assert f"config_batch_size {b} chosen" in err and "test limit" in err
    # float32 rounding: XLA's CPU code rounds a multiply-add differently in its vectorised loop
    # body and in the remainder (tests/test_engine.py), so bits can differ with the batch size
    np.testing.assert_allclose(batched.w2.values, whole.w2.values, rtol=1e-5, atol=1e-6)


def test_user_value_is_respected(measured, monkeypatch):
    monkeypatch.setattr(auto_batch, "memory_limit", lambda cfg: (1.0, "test limit"))
    assert auto_batch.choose_batch(_cfg(config_batch_size=8)) is None


def test_not_even_one_configuration_fits(measured):
    with pytest.raises(ConfigError) as e:
        auto_batch.choose_batch(_cfg(), limit=measured.io_per_config * C)
    assert e.value.field == "run.config_batch_size"
