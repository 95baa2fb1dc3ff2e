"""Model families. ``make_family(cfg.model, source)`` returns a :class:`Family`.

Each family module registers itself when :mod:`scl.catalog` imports it.
"""
from scl.families.base import Family
from scl.registry import FAMILIES


def make_family(options, source) -> Family:
    return FAMILIES[options.name].make(options, source)


__all__ = ["Family", "make_family"]
