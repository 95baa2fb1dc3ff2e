"""Sharding the configuration axis over several devices gives the same results as one device."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json, numpy as np, scl, jax
    from scl.simulate import run_variant
    cfg = scl.Config.from_dict({"seeds": 5, "loop": {"generations": 6, "n": 12, "regime": "fresh",
        "real_fraction": 0.5}, "metrics": {"names": ["w2"]}, "sweep": {"loop.real_fraction": [0.0, 0.5, 1.0]},
        "run": {"progress": False, "chunk_size": 4}})
    m, states = run_variant(cfg)
    print(json.dumps({"devices": jax.device_count(), "w2": m["w2"].tolist(),
                      "mean": np.asarray(states.model.mean).tolist()}))
""")


def run(devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow   # slow: 23 s; tests/test_cli_devices.py checks 2 devices against 1 through scl run
def test_two_devices_match_one():
    one, two = run(1), run(2)
    assert one["devices"] == 1 and two["devices"] == 2
    # 15 configurations: padded to 16 on two devices, the padding dropped again
    np.testing.assert_array_equal(np.array(one["mean"]), np.array(two["mean"]))
    np.testing.assert_allclose(np.array(one["w2"]), np.array(two["w2"]), rtol=1e-5, atol=1e-6)
