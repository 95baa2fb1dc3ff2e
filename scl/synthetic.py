"""What happens to sampled rows before they are mixed: curate (pick among K), then correct.

``make_synthetic_pipeline(cfg, source, family)`` returns a :class:`SyntheticPipeline`. With no
curation or correction configured it keeps the first ``rows`` candidates unchanged.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax


class SyntheticPipeline(NamedTuple):
    """candidates_per_row: K, the model draws K * rows candidates per generation.
    apply(keys, candidates [K*rows, ...], knobs) -> rows [rows, ...]
        keys: the generation's key dict (use keys["curate"], keys["correct"]); knobs: the full
        knob tree ({section: {name: value}}).
    """

    candidates_per_row: int
    apply: Callable


def make_synthetic_pipeline(cfg, source, family, rows: int) -> SyntheticPipeline:
    def apply(keys, candidates, knobs):
        return jax.tree_util.tree_map(lambda c: c[:rows], candidates)
    return SyntheticPipeline(1, apply)
