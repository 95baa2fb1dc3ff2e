"""What a metric is given when it is built: the family, the truth, the metric settings."""
from __future__ import annotations

from typing import Any, NamedTuple

from scl.errors import ConfigError


class MetricContext(NamedTuple):
    family: Any        # scl.families.Family
    source: Any        # scl.data.Source
    options: Any       # scl.config.MetricsConfig
    config: Any = None  # the whole scl.config.Config


def require(condition: bool, name: str, what: str):
    """Refuse a metric that does not apply to this family/truth, naming the field."""
    if not condition:
        raise ConfigError("metrics.names", f"metric {name!r} needs {what}")
