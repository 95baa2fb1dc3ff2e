"""Training diagnostics of the neural families."""
from __future__ import annotations

from scl.metrics.base import require
from scl.registry import register_metric


@register_metric("train_loss", doc="neural families: mean training loss over the last quarter of the generation's steps",
                 long_name="training loss", units="1")
def make_train_loss(ctx):
    from scl.families.neural import NeuralOptions

    require(isinstance(getattr(ctx.config, "model", None), NeuralOptions), "train_loss",
            "a neural family (flow, diffusion, flow_matching)")

    def fn(probe, state, knobs):
        return state.loss
    return fn
