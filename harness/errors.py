"""User errors of the harness, and the set of error types the CLI prints as one line."""

from fusion.errors import FusionError
from judges.errors import JudgeError
from reports.errors import ReportError
from tasks.errors import TaskDataError


class HarnessError(Exception):
    """A user mistake caught by the harness (bad path, conflicting run directory, ...)."""

    exit_code = 2


class BackendUnavailable(HarnessError):
    """A backend whose optional dependency or hardware is missing here."""


USER_ERRORS: tuple[type[Exception], ...] = (
    HarnessError,
    TaskDataError,
    FusionError,
    ReportError,
    JudgeError,
)


class Interrupted(HarnessError):
    """Ctrl-C or SIGTERM during a long job: finished work is on disk, a rerun continues."""

    exit_code = 130
