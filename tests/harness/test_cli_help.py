"""``--help`` as a user reads it: docstrings wrapped in the source flow with the terminal
(a command-list entry or a later paragraph must not break where the source line did)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.helptext import flow

REPO = Path(__file__).resolve().parents[2]


def _help(*args: str) -> str:
    """``fusebench ... --help`` in a subprocess on a 200-column terminal, spaces collapsed
    inside lines (rich pads and frames them) but line breaks kept."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return "\n".join(" ".join(line.split()) for line in done.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        # The command list: compare's docstring breaks after "paired-bootstrap" in the source.
        (["--help"], "its 95% paired-bootstrap interval and (accuracy) an exact McNemar"),
        (["fuse", "--help"], "one pair at a time), then merge the pair targets"),
        # A paragraph after the first: the source breaks after "transformer layers,".
        (["vocab", "train", "--help"], "transformer layers, all) on the CLM objective"),
    ],
)
def test_help_text_flows(args: list[str], sentence: str) -> None:
    assert sentence in _help(*args)


def test_flow_keeps_paragraphs_and_marked_blocks() -> None:
    assert flow("One\ntwo.\n\nThree\n  four.") == "One two.\n\nThree four."
    assert flow("Intro.\n\n\bkeep\nthese lines") == "Intro.\n\n\bkeep\nthese lines"
    assert flow(None) is None
