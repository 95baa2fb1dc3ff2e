"""Metrics taken every generation. ``make_metrics(ctx)`` -> {name: fn(key, state, knobs) -> scalar}."""
from scl.metrics import classical, gaussian, samples, training  # noqa: F401  (registers)
from scl.metrics.base import MetricContext
from scl.registry import METRICS


def make_metrics(ctx: MetricContext) -> dict:
    """A metric's ``make`` may return a dict {name: fn} (e.g. mode_mass -> mode_mass_0..M-1)."""
    out = {}
    for name in ctx.options.names:
        made = METRICS[name].make(ctx)
        out.update(made if isinstance(made, dict) else {name: made})
    return out


__all__ = ["MetricContext", "make_metrics"]
