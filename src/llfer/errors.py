"""User-facing errors: each one prints as a single line naming the culprit."""


class LlferError(Exception):
    """An error caused by the user's input (bad file, bad key, bad value)."""


class ConfigError(LlferError):
    """A params.yaml / config error; the message names the offending key."""


class DataError(LlferError):
    """A dataset file or folder is missing, corrupt or malformed."""
