"""What happens to sampled rows before they are mixed: curate (pick among K), then correct.

``make_synthetic_pipeline(cfg, source, family, rows)`` returns a :class:`SyntheticPipeline`. With
no ``curation`` section the model draws ``rows`` candidates and they are kept as they are; with no
``correction`` section the kept rows are not corrected. See :mod:`scl.curation` and
:mod:`scl.correction`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax


class SyntheticPipeline(NamedTuple):
    """candidates_per_row: K, the model draws K * rows candidates per generation.
    apply(keys, candidates [K*rows, ...], knobs) -> rows [rows, ...]
        keys: the generation's key dict (use keys["curate"], keys["correct"]; keys["root"] is the
        seed's root key); knobs: the full knob tree ({section: {name: value}}).
    """

    candidates_per_row: int
    apply: Callable


def make_synthetic_pipeline(cfg, source, family, rows: int) -> SyntheticPipeline:
    from scl.correction import make_corrector
    from scl.curation import make_curator

    curation = getattr(cfg, "curation", None)
    correction = getattr(cfg, "correction", None)
    curator = make_curator(curation, rows) if curation is not None else None
    corrector = make_corrector(correction, source, cfg) if correction is not None else None

    def apply(keys, candidates, knobs):
        if curator is None:
            kept = jax.tree_util.tree_map(lambda c: c[:rows], candidates)
        else:
            kept = curator.curate(keys["curate"], candidates, knobs["curation"])
        if corrector is not None:
            kept = corrector.correct(keys, kept, knobs["correction"])
        return kept

    return SyntheticPipeline(curator.candidates_per_row if curator else 1, apply)
