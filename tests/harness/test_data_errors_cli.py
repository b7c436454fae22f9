"""Data problems reach the user as one line naming the file and line, with a non-zero exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def _fusebench(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).parent / "fusebench")
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_malformed_row_and_missing_data(zoo: Path, tmp_path: Path, data_root: Path) -> None:
    bad = tmp_path / "data"
    shutil.copytree(data_root / "nsmc", bad / "nsmc")
    path = bad / "nsmc" / "ratings_test.txt"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\tpositive"
    path.write_text("\n".join(lines), encoding="utf-8")
    args = ("eval", str(zoo / "tiny-gpt2"), "--tasks", "nsmc", "--limit", "2")
    done = _fusebench(*args, "--output", str(tmp_path / "r1"), env={"FUSEBENCH_DATA_DIR": str(bad)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{path}:4: column 'label': expected an integer, got 'positive'" in done.stderr

    done = _fusebench(*args, "--output", str(tmp_path / "r2"), env={"FUSEBENCH_DATA_DIR": ""})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no local data directory (set FUSEBENCH_DATA_DIR) and the Hub dataset" in done.stderr
