"""The merge package's error (its own module: the spec and the method registry both raise it)."""

from __future__ import annotations

from fusion.errors import FusionError


class MergeError(FusionError):
    """A merge cannot run: bad config, missing or mismatching models."""
