"""Truth sources. ``make_source(cfg.truth)`` returns a :class:`Source`.

Each source module registers itself when :mod:`scl.catalog` imports it.
"""
from scl.data.source import Source
from scl.registry import SOURCES


def make_source(options) -> Source:
    return SOURCES[options.name].make(options)


__all__ = ["Source", "make_source"]
