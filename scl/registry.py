"""Name -> piece registries. A new family, source or metric is one file plus one ``register`` line.

Each entry pairs an *options* dataclass (the typed, validated YAML section) with a ``make``
function that turns those options into the piece's pure functions.
"""
from __future__ import annotations

from typing import Callable, NamedTuple


class Entry(NamedTuple):
    options: type          # frozen dataclass parsed from the config section
    make: Callable         # options (+ context) -> piece
    doc: str = ""


FAMILIES: dict[str, Entry] = {}
SOURCES: dict[str, Entry] = {}
METRICS: dict[str, Entry] = {}
CURATORS: dict[str, Entry] = {}
CORRECTORS: dict[str, Entry] = {}


def _register(table: dict, name: str, options: type, doc: str = ""):
    def decorator(make: Callable) -> Callable:
        table[name] = Entry(options, make, doc or (make.__doc__ or "").strip().split("\n")[0])
        return make
    return decorator


def register_family(name: str, options: type, doc: str = ""):
    """Decorator: ``make(options, source) -> Family`` under ``model.family: name``."""
    return _register(FAMILIES, name, options, doc)


def register_source(name: str, options: type, doc: str = ""):
    """Decorator: ``make(options) -> Source`` under ``truth.kind: name``."""
    return _register(SOURCES, name, options, doc)


def register_metric(name: str, options: type | None = None, doc: str = ""):
    """Decorator: ``make(ctx) -> fn(key, model_state, knobs) -> scalar`` under ``metrics.names``."""
    return _register(METRICS, name, options, doc)


def register_curator(name: str, options: type, doc: str = ""):
    return _register(CURATORS, name, options, doc)


def register_corrector(name: str, options: type, doc: str = ""):
    return _register(CORRECTORS, name, options, doc)


def load_builtin() -> None:
    """Import the modules that register the built-in pieces."""
    import scl.data  # noqa: F401
    import scl.families  # noqa: F401
    import scl.metrics  # noqa: F401
    import scl.curation  # noqa: F401
    import scl.correction  # noqa: F401
    import scl.metrics.reward  # noqa: F401
