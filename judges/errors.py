"""User errors of judging: bad inputs, a judge endpoint that refuses us, a bad setting."""


class JudgeError(Exception):
    """One line naming the file, row or setting at fault; the CLI exits 2 without a traceback."""

    exit_code = 2
