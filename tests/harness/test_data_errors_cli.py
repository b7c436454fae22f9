"""Data problems reach the user as one line naming the file and line, with a non-zero exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


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


def test_data_file_not_utf8_is_named(zoo: Path, tmp_path: Path, data_root: Path) -> None:
    """NSMC's ratings re-encoded as cp949 (as copies of NSMC often are): one line naming the
    file, the line and the encoding it reads as; no run directory."""
    bad = tmp_path / "data"
    (bad / "nsmc").mkdir(parents=True)
    path = bad / "nsmc" / "ratings_test.txt"
    text = (data_root / "nsmc" / "ratings_test.txt").read_text(encoding="utf-8")
    path.write_bytes(text.encode("cp949", errors="replace"))
    out = tmp_path / "run"
    args = ("eval", str(zoo / "tiny-gpt2"), "--tasks", "nsmc", "--limit", "2", "--output", str(out))
    done = _fusebench(*args, env={"FUSEBENCH_DATA_DIR": str(bad)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [done.stderr.strip().splitlines()[-1]], done.stderr  # one, the last line
    assert f"{path}:2: not UTF-8 (byte 26: 0xb1)" in errors[0]
    assert "it reads as cp949" in done.stderr and "iconv -f cp949 -t utf-8" in done.stderr
    assert not out.exists()


def test_logickor_questions_not_utf8(tmp_path: Path) -> None:
    from tasks.errors import TaskDataError
    from tasks.logickor import QUESTIONS, load_questions

    path = tmp_path / QUESTIONS
    path.parent.mkdir(parents=True)
    path.write_bytes('{"id": 1, "category": "추론"}\n'.encode("cp949"))
    with pytest.raises(TaskDataError) as caught:
        load_questions(tmp_path)
    assert str(caught.value).startswith(f"{path}:1: not UTF-8 (byte 23: 0x")
    assert "reads as cp949" in str(caught.value)
