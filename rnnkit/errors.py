"""User-facing errors: the CLI prints these as one line and exits with code 2 (no traceback)."""


class UserError(ValueError):
    """Bad input from the user (file, flag, shape, value). The message says what and where.

    The message is kept to one line: line breaks inside it (a column name or a file name holding
    one, quoted from the user's file) are shown escaped as ``\\n`` / ``\\r``.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))
