"""User-facing errors: the CLI prints these as one line and exits with code 2 (no traceback)."""


class UserError(ValueError):
    """Bad input from the user (file, flag, shape, value). The message says what and where."""
