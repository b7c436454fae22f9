"""A broken model directory is one line naming the file and the cause, from ``eval`` and from
``fuse extract``: real copies of a zoo model, cut short or with config.json out of step with
the weights, through the CLI's entry point."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import main


def _config_set(key: str, value: int) -> Callable[[Path], str]:
    def breaks(model: Path) -> str:
        path = model / "config.json"
        config = json.loads(path.read_text(encoding="utf-8"))
        config[key] = value
        path.write_text(json.dumps(config), encoding="utf-8")
        return str(path)

    return breaks


def _cut(size: int) -> Callable[[Path], str]:
    def breaks(model: Path) -> str:
        path = model / "model.safetensors"
        with path.open("r+b") as handle:
            handle.truncate(size)
        return str(path)

    return breaks


# name -> (how the copy is broken, returning the file the line names; what the line says)
BROKEN = {
    "vocab_size": (
        _config_set("vocab_size", 1000),
        "vocab_size 1000 does not match the weights' embedding rows",
    ),
    "truncated": (
        _cut(100_000),
        "truncated or not a safetensors file (incomplete metadata, file not fully covered)",
    ),
    "header cut": (_cut(5), "truncated or not a safetensors file (header too small)"),
    "other shape": (
        _config_set("intermediate_size", 96),
        "cannot load the model (the shapes of its weights do not match its config.json)",
    ),
}


def _broken_copy(zoo: Path, tmp_path: Path, case: str) -> tuple[Path, str]:
    model = tmp_path / "broken-llama"
    shutil.copytree(zoo / "tiny-llama", model)
    breaks, _ = BROKEN[case]
    named = breaks(model)
    return model, (str(model) if case == "other shape" else named)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    return errors[0]


@pytest.mark.parametrize("case", list(BROKEN))
def test_eval_of_a_broken_model_is_one_line(
    case: str, tmp_path: Path, zoo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, named = _broken_copy(zoo, tmp_path, case)
    run = tmp_path / "run"
    capsys.readouterr()
    code = main(["eval", str(model), "--tasks", "nsmc", "--limit", "2", "--output", str(run)])
    line = _one_line(capsys)
    assert code == 2
    assert line.startswith(f"error: {named}") and BROKEN[case][1] in line, line
    if case == "other shape":  # found while loading: the run records it
        manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["status"] == "failed" and BROKEN[case][1] in manifest["error"]
    else:  # found before anything is written
        assert not run.exists()


@pytest.mark.parametrize("case", list(BROKEN))
def test_fuse_extract_of_a_broken_source_is_one_line(
    case: str,
    tmp_path: Path,
    zoo: Path,
    fuse_config,
    nsmc_rows,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, named = _broken_copy(zoo, tmp_path, case)
    config = fuse_config(tmp_path, nsmc_rows(4), sources=[{"name": "broken", "path": str(model)}])
    capsys.readouterr()
    code = main(["fuse", "extract", str(config), "--quiet"])
    line = _one_line(capsys)
    assert code == 2
    if case == "other shape":
        named = f"broken ({model})"
    assert line.startswith(f"error: {named}") and BROKEN[case][1] in line, line
    store = tmp_path / "work" / "stores" / "broken"
    if case == "other shape":  # found while loading, after the store's folder was made
        assert not list(store.glob("*.safetensors"))
    else:  # found before anything is written
        assert not store.exists()
