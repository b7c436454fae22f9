"""Bad training input is refused with one line naming the file or field, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fusion.config import ConfigError, load_config
from fusion.errors import FusionError
from fusion.store import StoreError
from fusion.train.launch import check_inputs
from harness.cli.fuse_train_cmd import train_command

REPO = Path(__file__).resolve().parents[2]


def _config(tmp: Path, train_config, store: Path, **train: object) -> Path:
    return train_config(
        tmp / "c.yaml", tmp / "w", fused_store=str(store), precision="fp32", **train
    )


def test_store_of_another_tokenizer_is_refused(
    tmp_path: Path, zoo: Path, korean_rows, build_fused_store, train_config
) -> None:
    # Tokenised by tiny-gpt2's tokenizer, so its fingerprint is not tiny-llama's.
    store = build_fused_store(
        zoo / "tiny-llama", tmp_path / "fused", korean_rows(4), tokenizer_dir=zoo / "tiny-gpt2"
    )
    cfg = _config(tmp_path, train_config, store)
    with pytest.raises(StoreError, match="made with another tokenizer than .*tiny-llama"):
        check_inputs(load_config(cfg), nproc=1, resume=False)
    # The rank entry point says the same in one line and exits 2.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "fusion.train.main", str(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "made with another tokenizer" in errors[0]
    assert "Traceback" not in done.stderr


def test_store_not_fused_or_unfinished_is_refused(
    tmp_path: Path, zoo: Path, korean_rows, build_fused_store, train_config, fused_store: Path
) -> None:
    topk = build_fused_store(zoo / "tiny-llama", tmp_path / "topk", korean_rows(4), kind="topk")
    with pytest.raises(StoreError, match="a 'topk' store, not a fused-targets store"):
        check_inputs(load_config(_config(tmp_path, train_config, topk)), nproc=1, resume=False)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(fused_store, unfinished)
    manifest = json.loads((unfinished / "manifest.json").read_text())
    (unfinished / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(StoreError, match="unfinished"):
        check_inputs(
            load_config(_config(tmp_path, train_config, unfinished)), nproc=1, resume=False
        )
    with pytest.raises(StoreError, match="not a top-k store"):
        check_inputs(
            load_config(_config(tmp_path, train_config, tmp_path / "nowhere")),
            nproc=1,
            resume=False,
        )


def test_unknown_or_bad_train_field_names_the_field(
    tmp_path: Path, train_config, fused_store: Path
) -> None:
    with pytest.raises(ConfigError, match=r"c.yaml: field train.learning_rat: Extra inputs"):
        load_config(_config(tmp_path, train_config, fused_store, learning_rat=1e-5))
    with pytest.raises(ConfigError, match=r"field train.zero_stage: Input should be 0, 1, 2 or 3"):
        load_config(_config(tmp_path, train_config, fused_store, zero_stage=4))


def test_cli_command_reports_user_errors(
    tmp_path: Path, zoo: Path, korean_rows, build_fused_store, train_config
) -> None:
    """The typer command (wired into `fusebench fuse` at merge) passes user errors through."""
    topk = build_fused_store(zoo / "tiny-llama", tmp_path / "topk", korean_rows(4), kind="topk")
    app = typer.Typer()
    app.command("train")(train_command)
    app.command("other")(lambda: None)  # two commands, so "train" is a sub-command as in fuse
    result = CliRunner().invoke(
        app, ["train", str(_config(tmp_path, train_config, topk)), "--nproc", "1"]
    )
    assert isinstance(result.exception, FusionError)
    assert "not a fused-targets store" in str(result.exception)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert isinstance(result.exception, ConfigError) and "config file not found" in str(
        result.exception
    )
    help_text = CliRunner().invoke(app, ["train", "--help"]).output
    assert "--nproc" in help_text and "--resume" in help_text
