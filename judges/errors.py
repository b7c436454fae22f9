"""User errors of judging: bad inputs, a judge endpoint that refuses us, a bad setting."""

from runrecords.errors import UserError


class JudgeError(UserError):
    """One line naming the file, row or setting at fault; the CLI exits 2 without a traceback."""
