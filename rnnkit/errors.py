"""User-facing errors: the CLI prints these as one line and exits with code 2 (no traceback)."""


class UserError(ValueError):
    """Bad input from the user (file, flag, shape, value). The message says what and where.

    The message is kept to one line: line breaks inside it (a column name or a file name holding
    one, quoted from the user's file) are shown escaped as ``\\n`` / ``\\r``.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


def exc_summary(exc: BaseException, limit: int = 200) -> str:
    """The first line of a library exception's message (its type if empty), cut to ``limit``
    characters: the "why" part of a UserError that wraps it."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]
