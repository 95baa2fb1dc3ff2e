"""Metrics taken every generation. ``make_metrics(ctx)`` -> {name: fn(key, state, knobs) -> scalar}."""
from scl.metrics import classical, gaussian, samples  # noqa: F401  (registers)
from scl.metrics.base import MetricContext
from scl.registry import METRICS


def make_metrics(ctx: MetricContext) -> dict:
    return {name: METRICS[name].make(ctx) for name in ctx.options.names}


__all__ = ["MetricContext", "make_metrics"]
