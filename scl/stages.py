"""Stages: what happens to a generation's synthetic rows before they are mixed (curation,
correction), composed like ``optax.chain``.

A stage is a pair of pure functions over pytrees:

    init(key, real [n, ...]) -> state          once, from generation 0's real rows
    apply(key, state, rows [N, ...], w [N], knobs) -> (state, rows [N', ...], w [N'])

``w`` are 0/1 row weights with the rows present first (a stage that drops rows, such as the
threshold rule, moves its kept rows to the front). ``knobs`` is the stage's section of the knob
tree. ``candidates_per_row`` K: the stage keeps N' = N / K rows (curation picks among K
candidates); ``weighted``: it may return weights that are not all 1. ``sample`` (optional, only
the first stage of a chain): ``sample(key, model_state, count, model_knobs, knobs) -> rows
[count, ...]`` draws the rows its ``apply`` receives in place of the family's ``sample`` (an
exact tilt draws from the tilted model law; it asks the family for what it needs through
``StageContext.family``). The loop state holds every
stage's state across generations (and checkpoints save it), e.g. the k-means corrector's centres.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional


class Stage(NamedTuple):
    init: Callable
    apply: Callable
    candidates_per_row: int = 1
    weighted: bool = False
    sample: Optional[Callable] = None


class StageContext(NamedTuple):
    """Static facts a stage is built from."""

    source: Any        # the truth (scl.data.Source): a corrector may draw fresh truth rows
    truth: Any         # the truth's options (its ``rows`` kind, ``dim``)
    rows: int          # synthetic rows each generation keeps (after curation)
    n: int             # real rows of generation 0 (what ``init`` is given)
    family: Any = None  # the model family (scl.families.Family): its optional capabilities,
                        # e.g. ``sampling_gaussian``; None where a stage is built without a model


def no_state(key, real):
    return ()


def chain(named: list[tuple[str, Stage]]) -> Stage:
    """Stages applied in order; ``named``: [(section, stage)]. The chained stage's state is
    {section: state}, its knobs {section: knobs}, and its keys {section: key}: each stage gets
    the key and knobs of its own config section."""
    K = 1
    for _, stage in named:
        K *= stage.candidates_per_row

    def init(keys, real):
        return {name: stage.init(keys[name], real) for name, stage in named}

    def apply(keys, states, rows, w, knobs):
        states = dict(states)
        for name, stage in named:
            states[name], rows, w = stage.apply(keys[name], states[name], rows, w, knobs.get(name, {}))
        return states, rows, w

    if any(stage.sample is not None for _, stage in named[1:]):
        raise ValueError("only the first stage of a chain may draw its own rows (Stage.sample)")
    sample = None
    if named and named[0][1].sample is not None:
        first_name, first = named[0]

        def sample(key, model_state, count, knobs):     # knobs: the whole knob tree
            return first.sample(key, model_state, count, knobs["model"], knobs.get(first_name, {}))

    return Stage(init, apply, K, any(stage.weighted for _, stage in named), sample)
