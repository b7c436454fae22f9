"""User errors of the reports package: bad or foreign input files, runs that do not compare."""

from runrecords.errors import UserError


class ReportError(UserError):
    """A report or comparison cannot be made: the one-line message names the file or setting."""


class BadFile(ReportError):
    """One input file that is not what it claims (or not one of ours); ``--skip-bad`` skips it."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
