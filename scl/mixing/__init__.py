"""Mixing regimes: how each generation's training set is built from real and synthetic rows.

Conventions (also in the README):

* ``real_fraction`` f in [0, 1]: share of real rows in a generation's training set.
* ``lam`` (Bertrand et al., ICLR 2024) = #synthetic / #real. f and lambda convert as
  lambda = (1 - f) / f and f = 1 / (1 + lambda) (``LoopConfig.lam_value``, the one place);
  real rows carry total weight 1/(1+lambda).
* Generation 0 is always the fit on ``n`` real rows. Generation t >= 1 trains on what the regime
  says; each regime is one file here, registered under ``loop.regime`` (scl.catalog imports it),
  holding its row mixer and, where exact, its sufficient-statistics form side by side:

  replace               ``n`` rows sampled from model t-1 (fully synthetic).
  fresh                 round(f n) fresh real rows + (n - round(f n)) rows from model t-1.
  fixed_real            the n real rows of generation 0 + round(lambda n) rows from model t-1.
  accumulate            the n real rows + every synthetic batch so far.
  accumulate_subsample  n rows drawn uniformly without replacement from the accumulate pool.
  accumulate_decay      the n real rows + every synthetic batch so far, older batches cut short
                        (Gillman et al., ICML 2024).

Shapes are fixed: variable counts are 0/1 row weights in fixed-capacity buffers, so every regime
vmaps over its knobs. The rows present always come first: a training set's weights are 1 on rows
[0, sum(w)) and 0 after, and families may rely on it. Synthetic rows arrive with weights too
(a stage such as curation by threshold may drop rows; its kept rows come first).
"""
from scl.mixing.base import Mixer, Pool, Regime, RegimeContext, StatisticsMixer
from scl.registry import REGIMES


def make_regime(loop, ctx: RegimeContext) -> Regime:
    """The registered regime ``loop.regime`` built for ``loop`` (a LoopConfig)."""
    return REGIMES[loop.regime].make(loop, ctx)


def make_mixer(loop, lam_max: float = 0.0, source=None) -> Mixer:
    """The row mixer of ``loop.regime`` (``lam_max``: the largest lambda of a fixed_real sweep)."""
    ctx = RegimeContext(loop.n, loop.synthetic_rows, loop.generations, max(lam_max, loop.lam_value), source)
    return make_regime(loop, ctx).rows


__all__ = ["Mixer", "Pool", "Regime", "RegimeContext", "StatisticsMixer", "make_mixer", "make_regime"]
