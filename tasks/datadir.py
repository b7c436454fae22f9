"""Where benchmark data comes from: a local data directory, or the Hub when there is none.

Users with the Hub get the Hub ids; machines without it (CI, air-gapped clusters) point
``FUSEBENCH_DATA_DIR`` at a folder holding the original files. A ``shared/data`` folder beside
the checkout (``../shared/data``) is picked up when present, so a clone next to the project's
shared data works with no setting.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.errors import TaskDataError

ENV_VAR = "FUSEBENCH_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_candidates() -> list[Path]:
    return [Path.cwd() / ".." / "shared" / "data", _REPO_ROOT / ".." / "shared" / "data"]


def data_dir() -> Path | None:
    """The local data directory to read, or None to use the Hub.

    ``FUSEBENCH_DATA_DIR`` wins; set to an empty string it forces the Hub. A set path that
    does not exist is a user error, not a silent fall-back to the Hub.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit is not None:
        if explicit == "":
            return None
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise TaskDataError(f"{ENV_VAR}={explicit}: no such directory")
        return path.resolve()
    for candidate in _default_candidates():
        if candidate.is_dir():
            return candidate.resolve()
    return None


def require_file(root: Path, relative: str) -> Path:
    """A file under the data directory, or a one-line error naming what is missing."""
    path = root / relative
    if not path.is_file():
        raise TaskDataError(f"{path}: missing from the data directory ({ENV_VAR}={root})")
    return path
