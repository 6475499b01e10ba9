"""Errors that speak to the user: the CLI prints their message, not a traceback."""


class UserError(Exception):
    """A mistake the user can fix; the message says what is wrong and what to do."""


class DataFormatError(UserError, ValueError):
    """A malformed data file; the message names the file and row."""

    def __init__(self, path: object, row: int | None, reason: str) -> None:
        where = f"{path}" if row is None else f"{path}, row {row}"
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.row = row
        self.reason = reason
