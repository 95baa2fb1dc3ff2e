"""Per-chunk callbacks: ``scl.simulate(cfg, callbacks=[fn, ...])``.

After every compiled chunk of every static variant, each callback is called on the host as
``fn(event)`` with a :class:`ChunkEvent` holding the metrics of the generations just computed
(generation 0, the fit on real data, comes as its own event first). A callback with a ``close()``
method has it called once when the run ends (also on an error or Ctrl-C). Callbacks see copies:
changing the arrays changes nothing in the run. :class:`scl.tensorboard.TensorBoard` is one.

    def log(event):
        print(event.variant, event.generations, {k: v.mean() for k, v in event.metrics.items()})
    scl.simulate(cfg, callbacks=[log])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChunkEvent:
    """The metrics of generations ``generations[0] .. generations[1] - 1`` of one static variant.

    ``variant``: the variant's index in ``cfg.static_variants()``; ``static``: its static sweep
    coordinates ({setting's last path component: value}, empty without static sweeps);
    ``metrics``: {name: float32 array [k, C]} with k = the number of generations;
    ``points[c]``: configuration c's coordinates ({swept knob: value, ..., "seed": s});
    ``total_generations``: the run's G; ``restored``: True for generations read back from a
    checkpoint on resume (computed by an earlier process); ``config``: the variant's Config."""

    variant: int
    static: dict
    generations: tuple
    metrics: dict
    points: list
    total_generations: int
    restored: bool = False
    config: Any = None


def close_all(callbacks):
    for cb in callbacks:
        close = getattr(cb, "close", None)
        if callable(close):
            close()
