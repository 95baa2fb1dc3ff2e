"""Metrics taken every generation. ``make_metrics(ctx)`` -> {name: fn(probe, state, knobs) -> scalar}.

The metric modules register themselves when :mod:`scl.catalog` imports them; the probe they read is
drawn once per generation (:mod:`scl.probe`).
"""
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
