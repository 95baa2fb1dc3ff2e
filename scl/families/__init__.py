"""Model families. ``make_family(cfg.model, source)`` returns a :class:`Family`."""
from scl.families import categorical, diffusion, flow, flow_matching, gaussian, kde, mixture, regression  # noqa: F401,E501  (registers)
from scl.families.base import Family
from scl.registry import FAMILIES


def make_family(options, source) -> Family:
    return FAMILIES[options.name].make(options, source)


__all__ = ["Family", "make_family"]
