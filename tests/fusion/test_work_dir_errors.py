"""A work_dir that is an existing file (or lies under one): one line naming the config and the
path, exit 2, nothing written; for every command that reads a work_dir from its config."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("command", "config"),
    [
        (["fuse", "run"], "tiny-fuse.yaml"),
        (["fuse", "extract"], "tiny-fuse.yaml"),
        (["fuse", "chat"], "tiny-fusechat.yaml"),
        (["vocab", "train"], "tiny-vocab-train.yaml"),
    ],
)
@pytest.mark.parametrize("under", [False, True])
def test_work_dir_that_is_a_file(
    command: list[str],
    config: str,
    under: bool,
    zoo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = tmp_path / "work"
    file.write_text("mine")
    work_dir = file / "sub" if under else file
    text = (REPO / "configs" / config).read_text(encoding="utf-8")
    text = text.replace("../zoo/", f"{zoo}/").replace(
        "../runs/tiny-llama-ko", str(zoo / "tiny-llama")
    )
    lines = [
        f"work_dir: {work_dir}" if line.startswith("work_dir:") else line
        for line in text.splitlines()
    ]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main([*command, str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{path}: field work_dir: {work_dir} is not a directory" in err
    if under:
        assert f"({file} is a file)" in err
    assert file.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "work"]
