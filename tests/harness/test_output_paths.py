"""An output under a file (``report --output RUN/manifest.json/r.html``) is one line naming the
output, exit 2, nothing written; for every command that takes an output. The real CLI entry
point on real inputs (tiny zoo models, LogicKor's judged files, a real file in the way)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cli import main

LOGICKOR = ("logickor", "evaluated")


def _argv(command: str, zoo: Path, data_root: Path, inputs: Path, output: Path) -> list[str]:
    """``command``'s arguments, its output at ``output``."""
    model = str(zoo / "tiny-llama")
    gpt = data_root.joinpath(*LOGICKOR, "openai")
    corpus = inputs / "corpus.jsonl"
    corpus.write_text('{"text": "안녕하세요, 반갑습니다. 오늘 날씨가 좋네요."}\n', encoding="utf-8")
    merge = inputs / "merge.yaml"
    merge.write_text(
        yaml.safe_dump(
            {
                "method": "varm",
                "base_model": model,
                "models": [{"model": model}, {"model": str(zoo / "tiny-mistral")}],
            }
        ),
        encoding="utf-8",
    )
    out = str(output)
    return {
        "report": ["report", str(gpt), "--output", out],
        "compare": ["compare", str(gpt / "gpt-3.5-turbo-0125"), str(gpt / "gpt-4-1106-preview")]
        + ["--output", out],
        "eval": ["eval", model, "--tasks", "nsmc", "--limit", "2", "--output", out],
        "generate": ["generate", model, "--output", out],
        "judge": ["judge", str(inputs), "--base-url", "http://127.0.0.1:9/v1", "--output", out],
        "contamination": ["contamination", str(corpus), "--tasks", "nsmc", "--output", out],
        "merge": ["merge", str(merge), "--output", out],
        "zoo build": ["zoo", "build", "--kind", "random", "--output", out],
        "vocab expand": ["vocab", "expand", model, "--corpus", str(corpus), "--output", out],
    }[command]


COMMANDS = [
    "report",
    "compare",
    "eval",
    "generate",
    "judge",
    "contamination",
    "merge",
    "zoo build",
    "vocab expand",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_under_a_file_is_one_line_naming_it(
    command: str,
    tmp_path: Path,
    zoo: Path,
    data_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    blocker = tmp_path / "manifest.json"
    blocker.write_text('{"a run": "manifest"}\n', encoding="utf-8")
    output = blocker / ("r.html" if command in ("report", "compare") else "out")
    argv = _argv(command, zoo, data_root, inputs, output)
    capsys.readouterr()
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert str(output) in errors[0] and "is a file" in errors[0], errors[0]
    assert blocker.read_text(encoding="utf-8") == '{"a run": "manifest"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "manifest.json"]


@pytest.mark.parametrize("command", ["contamination", "zoo build", "vocab expand"])
def test_a_directory_output_that_is_a_file_is_one_line(
    command: str,
    tmp_path: Path,
    zoo: Path,
    data_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The output folder itself an existing file (a typo for a folder name)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    output = tmp_path / "notes.txt"
    output.write_text("mine\n", encoding="utf-8")
    capsys.readouterr()
    assert main(_argv(command, zoo, data_root, inputs, output)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --output {output}: {output} is a file, not a directory"]
    assert output.read_text(encoding="utf-8") == "mine\n"
