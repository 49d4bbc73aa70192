"""The one exception type that turns into a one-line message and a non-zero exit."""


class ConfigError(Exception):
    """Bad configuration or a missing prerequisite: the CLI prints the message on one line, exits 2."""
