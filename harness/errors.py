"""User errors of the harness (every package's derive from ``runrecords.errors.UserError``)."""

from runrecords.errors import UserError


class HarnessError(UserError):
    """A user mistake caught by the harness (bad path, conflicting run directory, ...)."""


class BackendUnavailable(HarnessError):
    """A backend whose optional dependency or hardware is missing here."""
