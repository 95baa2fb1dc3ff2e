"""Name -> piece tables. A new family, source, stage, regime or metric is one file that registers
itself with a decorator below, plus one import line in :mod:`scl.catalog`.

Each entry pairs an *options* dataclass (the typed, validated YAML section, :mod:`scl.options`)
with a ``make`` function that turns those options into the piece's pure functions. This module
imports nothing of scl: every piece may import it, and it never imports a piece.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping, NamedTuple


class Entry(NamedTuple):
    options: type | None   # frozen dataclass parsed from the config section (None: no settings)
    make: Callable         # options (+ context) -> piece
    doc: str = ""
    traits: Mapping = MappingProxyType({})   # static facts read before anything is built


FAMILIES: dict[str, Entry] = {}
SOURCES: dict[str, Entry] = {}
METRICS: dict[str, Entry] = {}
CURATORS: dict[str, Entry] = {}
CORRECTORS: dict[str, Entry] = {}
REGIMES: dict[str, Entry] = {}
THEORIES: dict[str, Entry] = {}


def _register(table: dict, name: str, options: type | None, doc: str = "", **traits):
    def decorator(make: Callable) -> Callable:
        if name in table and table[name].make.__qualname__ != make.__qualname__:
            raise ValueError(f"two pieces register the name {name!r}: {table[name].make.__module__} "
                             f"and {make.__module__}")
        table[name] = Entry(options, make, doc or (make.__doc__ or "").strip().split("\n")[0],
                            MappingProxyType(traits))
        return make
    return decorator


def register_family(name: str, options: type, doc: str = ""):
    """Decorator: ``make(options, source) -> Family`` under ``model.family: name``."""
    return _register(FAMILIES, name, options, doc)


def register_source(name: str, options: type, doc: str = ""):
    """Decorator: ``make(options) -> Source`` under ``truth.kind: name``."""
    return _register(SOURCES, name, options, doc)


def register_metric(name: str, doc: str = "", needs: tuple = (), long_name: str = "", units: str = ""):
    """Decorator: ``make(ctx) -> fn(probe, model_state, knobs) -> scalar`` (or a dict {name: fn})
    under ``metrics.names``. ``needs``: what of the per-generation probe it reads ("model",
    "truth", "modes"; scl.probe). ``long_name`` and ``units`` (CF conventions: "1" for a pure
    number, "count" for counts, "nats") label the results' variable and every figure's axes."""
    return _register(METRICS, name, None, doc, needs=frozenset(needs), long_name=long_name, units=units)


def register_curator(name: str, options: type, doc: str = ""):
    """Decorator: ``make(options, ctx) -> Stage`` under ``curation.rule: name``."""
    return _register(CURATORS, name, options, doc)


def register_corrector(name: str, options: type, doc: str = ""):
    """Decorator: ``make(options, ctx) -> Stage`` under ``correction.kind: name``."""
    return _register(CORRECTORS, name, options, doc)


def register_regime(name: str, doc: str = "", **traits):
    """Decorator: ``make(loop, context) -> Regime`` under ``loop.regime: name``. Traits:
    ``check(loop, path)`` validates the loop section for this regime; ``statistics``: it has an
    exact sufficient-statistics form; ``synthetic_rows_are_n``; ``fresh_real``: it draws fresh
    real rows every generation; ``capacity_from_lam``: its buffer holds the sweep's largest
    lambda n synthetic rows; ``real_rows``: its training sets mix real and synthetic rows (so
    ``loop.real_weight`` applies; scl.mixing.base.source_weights)."""
    return _register(REGIMES, name, None, doc, **traits)


def register_theory(name: str, doc: str = ""):
    """Decorator: ``predict(cfg) -> {metric: np.ndarray [G+1]} | None`` (scl.theory). ``cfg`` is one
    point of the sweep (a static variant with every swept knob fixed, as ``Config.knob_grid()``
    yields); the arrays are the expected value over seeds of each metric the closed form covers,
    generations 0..G; None when ``cfg`` is not this setting."""
    return _register(THEORIES, name, None, doc)
