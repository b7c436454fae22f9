"""User-facing errors raised while locating or parsing benchmark data."""

from runrecords.errors import UserError


class TaskDataError(UserError):
    """Bad or missing benchmark data: the message names the file, line or field."""
