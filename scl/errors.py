"""The one error type users see: a bad field and what is allowed."""


class ConfigError(ValueError):
    """An invalid setting. ``str(err)`` is one line: ``<field>: <what is allowed>``."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
