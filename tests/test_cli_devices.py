"""scl run splits the CPU into one device per core; results match a one-device run."""
import os
import subprocess
import sys

import numpy as np

import scl
from scl.results import config_of


def run(tmp_path, name, *extra):
    out = tmp_path / name
    cmd = [sys.executable, "-m", "scl.cli", "run", "configs/quickstart.yaml", "-o", str(out), "--no-progress",
           "--set", "loop.generations=5", "--set", "seeds=5", "--set", "metrics.names=[w2,trace_ratio]", *extra]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}     # conftest pins 1 device
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return scl.load_results(out)


def test_cpu_devices_split_the_sweep_and_agree_with_one_device(tmp_path):
    two = run(tmp_path, "two", "--cpu-devices", "2")
    one = scl.simulate(config_of(two), progress=False)          # in-process: 1 device (conftest)
    assert two.attrs["devices"] == 2 and one.attrs["devices"] == 1
    for name in ("w2", "trace_ratio"):
        np.testing.assert_allclose(two[name].values, one[name].values, rtol=1e-5, atol=1e-6)


def test_bad_device_count_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "scl.cli", "run", "configs/quickstart.yaml", "-o",
                           str(tmp_path / "x"), "--cpu-devices", "0"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().startswith(
        "scl: error: --cpu-devices: must be in [1, 256], got 0")


def test_devices_for_keeps_cheap_sweeps_on_one_device(monkeypatch):
    from scl import devices

    monkeypatch.setattr(devices, "cpu_cores", lambda: 8)
    small = scl.load_config("configs/quickstart.yaml", overrides=["seeds=4"])        # 7 x 4 = 28
    big = scl.load_config("configs/quickstart.yaml", overrides=["seeds=64"])         # 7 x 64 = 448
    neural = scl.Config.from_dict({"seeds": 4, "truth": {"kind": "moons"}, "model": {"family": "flow_matching"},
                                   "metrics": {"names": ["sliced_w2"]}})
    assert devices.devices_for(small) == 1
    assert devices.devices_for(big) == 448 // 128
    assert devices.devices_for(neural) == 4
