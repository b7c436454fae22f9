"""User-facing errors raised while locating or parsing benchmark data."""


class TaskDataError(Exception):
    """Bad or missing benchmark data: the message names the file, line or field."""

    exit_code = 2
