"""User errors of judging: bad inputs, a judge endpoint that refuses us, a bad setting."""

from runrecords.errors import UserError


class JudgeError(UserError):
    """One line naming the file, row or setting at fault; the CLI exits 2 without a traceback."""


class EndpointUnreachable(JudgeError):
    """The judge endpoint could not be connected to for several calls in a row: an
    environment failure, not the user's input, so the CLI exits 1; what was judged is kept
    for a rerun."""

    exit_code = 1
