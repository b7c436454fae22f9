"""The merge memory benchmark runs (quick mode) and prints its ratio against the naive merge."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_quick_benchmark_prints_ratio(zoo: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "merge_memory.py"), "--quick", "--runs", "naive,varm"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"ratio varm: ([\d.]+)x one model \(naive ([\d.]+)x", done.stdout)
    assert match, done.stdout
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0
