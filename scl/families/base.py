"""The model-family interface every generative model implements (pure functions over pytrees)."""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional


class Family(NamedTuple):
    """A generative model family.

    init(key, x, w, knobs) -> state          fit generation 0 from scratch on rows x with weights w
    fit(key, state, x, w, knobs) -> state    fit the next generation (may warm-start from ``state``)
    sample(key, state, n, knobs) -> x        draw n rows, x: [n, dim] (or pytree with leading n)
    log_prob(state, x) -> [n]                optional exact log-density
    gaussian(state) -> (mean [d], cov [d,d]) optional: the model is Gaussian with these moments
    sampling_gaussian(state, knobs) -> (mean [d], root [d, d])   optional, with fit_moments: the
        model samples N(mean, root root^T), so a training set's statistics can be drawn directly
    fit_moments(key, state, moments, knobs) -> state     optional: fit from a training set's
        count, mean and scatter (scl.moments.Moments) instead of its rows
    training_set(state) -> (x, count)        optional: the state stores its training rows (a KDE),
        rows [0, count) present; under ``accumulate`` the engine then keeps the pool only there
    sample_synthetic(key, state, n, knobs) -> x   optional: the loop's synthetic rows come from
        this sampler instead of ``sample`` (which the metrics' probe still uses)

    ``x`` is [N, dim]; ``w`` is [N] 0/1 row weights: the mixers put the training rows first, so
    rows [0, sum(w)) are present and the rest is padding (scl.mixing). ``knobs`` is the
    dict of this family's vmapped numeric settings (e.g. ``knobs["sampling_bias"]``).
    """

    init: Callable
    fit: Callable
    sample: Callable
    log_prob: Optional[Callable] = None
    gaussian: Optional[Callable] = None
    sampling_gaussian: Optional[Callable] = None
    fit_moments: Optional[Callable] = None
    training_set: Optional[Callable] = None
    sample_synthetic: Optional[Callable] = None
