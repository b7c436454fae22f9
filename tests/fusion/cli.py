"""Running the real ``fusebench`` console script from fusion tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fusion.launch import child_env

REPO = Path(__file__).resolve().parents[2]


def fusebench_env() -> dict[str, str]:
    """This environment for a child: this checkout first, and without the one-rank
    rendezvous an in-process training set up here (its port is taken)."""
    return child_env(dict(os.environ)) | {"PYTHONPATH": str(REPO)}


def run_fusebench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "fusebench"), *args],
                          env=fusebench_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
