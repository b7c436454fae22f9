"""Fixtures that run the real ``fusebench`` console script, as a user does, from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fusion.launch import child_env

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    """This environment for a child: this checkout first, and without the one-rank
    rendezvous an in-process training set up here (its port is taken)."""
    return child_env(dict(os.environ)) | {"PYTHONPATH": str(REPO)}


@pytest.fixture
def fusebench_env() -> dict[str, str]:
    """The environment ``run_fusebench`` gives its child (for a child started by hand)."""
    return _env()


@pytest.fixture(scope="session")
def run_fusebench() -> Callable[..., subprocess.CompletedProcess]:
    """``run_fusebench(*args, timeout=600)``: the console script's exit code and output."""

    def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(sys.executable).parent / "fusebench"), *args],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
