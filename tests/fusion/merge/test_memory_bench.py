"""The streaming merge keeps to README's memory goal: merging three targets against a pivot
grows the peak resident set by less than 2.5x one model's weights, where loading the state
dicts whole (the naive merge) measurably needs more. Measured by ``bench/merge_memory.py`` on
README's model (a 90 MiB Llama): on a few-MiB model fixed costs of ~30 MiB swamp the ratio."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
GOAL = 2.5  # README, "Memory": below 2.5x one model's size for three inputs


@pytest.fixture(scope="module")
def ratios(zoo: Path) -> dict[str, float]:
    """Peak growth over one model's size, per run (naive, varm)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "merge_memory.py"),
            "--hidden",
            "512",
            "--layers",
            "6",
            "--runs",
            "naive,varm",
            "--zoo",
            str(zoo),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = dict(re.findall(r"^(naive|varm) .* ([\d.]+)x$", done.stdout, re.MULTILINE))
    assert found.keys() == {"naive", "varm"}, done.stdout
    return {run: float(value) for run, value in found.items()}


@pytest.mark.slow
def test_streaming_merge_stays_under_the_memory_goal(ratios: dict[str, float]) -> None:
    assert 0 < ratios["varm"] < GOAL, ratios


@pytest.mark.slow
def test_naive_merge_needs_measurably_more(ratios: dict[str, float]) -> None:
    # README: naive 5.3-6.1x against 1.32x; twice is far inside that and far above noise.
    assert ratios["naive"] > 2 * ratios["varm"], ratios
    assert ratios["naive"] > GOAL, ratios
