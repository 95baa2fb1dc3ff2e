"""scl: simulate self-consuming training loops of generative models in JAX.

    cfg = scl.load_config("configs/quickstart.yaml", overrides=["loop.generations=50"])
    ds = scl.simulate(cfg)            # xarray.Dataset: sweep axes x seed x generation
    scl.load_results("runs/quickstart")
    scl.boundary(cfg, "loop.real_fraction", 0.0, 0.5, tol=0.01)   # where stable turns collapsing
    scl.use_cpu_devices()             # first, on a CPU: one XLA device per core (scl run does this)
"""
__version__ = "0.1.0"

from scl.config import Config, LoopConfig, MetricsConfig, RunConfig, load_config  # noqa: E402
from scl.errors import ConfigError  # noqa: E402
from scl.results import load_results, save_results  # noqa: E402
from scl.simulate import simulate  # noqa: E402
from scl.checkpoint import load_generation  # noqa: E402
from scl.devices import use_cpu_devices  # noqa: E402
from scl.phase import Boundary, boundary, classify  # noqa: E402

__all__ = ["Boundary", "Config", "ConfigError", "LoopConfig", "boundary", "classify", "MetricsConfig", "RunConfig", "load_config",
           "load_generation", "load_results", "save_results", "simulate", "use_cpu_devices", "__version__"]
