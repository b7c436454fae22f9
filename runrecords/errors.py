"""The user errors every package raises: the CLI prints one line and exits with the code."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: the message names the file, row or setting at fault.

    The ``fusebench`` command prints it as one line (no traceback) and exits with
    ``exit_code``; each package's own error class derives from it.
    """

    exit_code = 2


class Interrupted(UserError):
    """Ctrl-C or SIGTERM during a long job: finished work is on disk, a rerun continues."""

    exit_code = 130


class OutputExists(UserError):
    """An output directory that holds something and may not be replaced."""
