"""Truth sources. ``make_source(cfg.truth)`` returns a :class:`Source`."""
from scl.data import categorical, gaussian, regression, toys  # noqa: F401  (registers the built-in sources)
from scl.data.source import Source
from scl.registry import SOURCES


def make_source(options) -> Source:
    return SOURCES[options.name].make(options)


__all__ = ["Source", "make_source"]
