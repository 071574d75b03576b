"""The one exception type stages print as a single line (exit 2) instead of a traceback."""


class UserError(Exception):
    """An error caused by the user's input or params; stages print it without a traceback."""
