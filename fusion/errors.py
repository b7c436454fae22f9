"""User-facing errors raised by the fusion package."""

from runrecords.errors import UserError


class FusionError(UserError):
    """A fusion step cannot go on: the one-line message says what to fix."""
