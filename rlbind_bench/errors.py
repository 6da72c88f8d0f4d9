"""Errors that are the user's to fix: the CLI prints them as one line and exits 2."""


class UserError(Exception):
    """A mistake in the user's input (paths, specs, YAML, data). Exit code 2, no traceback."""


class ConfigError(UserError):
    """A malformed or invalid configuration file or command-line value."""


class CheckpointError(UserError):
    """A missing, truncated, corrupt or unsafe checkpoint."""


class DatasetError(UserError):
    """A missing, empty or malformed dataset."""
