"""User-facing errors raised by the fusion package."""


class FusionError(Exception):
    """A fusion step cannot go on: the one-line message says what to fix."""

    exit_code = 2


class StageInterrupted(FusionError):
    """Ctrl-C or SIGTERM between units of work: finished work is on disk, a rerun continues."""

    exit_code = 130
