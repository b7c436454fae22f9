"""Bad merge input through the real CLI: one red line naming the problem, exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from harness.cli import main


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: dict | str) -> str:
    capsys.readouterr()  # drop what the fixtures printed
    config = tmp_path / "merge.yaml"
    config.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    code = main(["merge", str(config), "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    return err


def test_different_architectures(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "method": "ties",
        "base_model": str(zoo / "tiny-llama"),
        "models": [{"model": str(zoo / "tiny-mistral")}],
        "parameters": {"weight": 0.5},
    }
    err = _run(tmp_path, capsys, body)
    assert "different architectures" in err
    assert "LlamaForCausalLM" in err and "MistralForCausalLM" in err


def test_different_shapes_name_the_first_tensor(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same architecture, another vocabulary size: lm_head is the first to differ (file order)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(zoo / "tiny-llama")
    model.resize_token_embeddings(3008)
    model.save_pretrained(tmp_path / "bigger")
    body = {
        "method": "varm",
        "base_model": str(zoo / "tiny-llama"),
        "models": [{"model": str(tmp_path / "bigger")}],
    }
    err = _run(tmp_path, capsys, body)
    assert "tensor lm_head.weight: shape [3000, 64]" in err
    assert "[3008, 64]" in err


def test_pivot_missing(
    llamas: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, targets = llamas
    models = [{"model": str(t)} for t in targets]
    err = _run(tmp_path, capsys, {"method": "varm", "models": models})
    assert "base_model: method varm needs a base (pivot) model" in err
    err = _run(
        tmp_path,
        capsys,
        {
            "method": "ties",
            "base_model": str(tmp_path / "nope"),
            "models": models,
            "parameters": {"weight": 1},
        },
    )
    assert f"base_model: {tmp_path / 'nope'}: no such model directory" in err


def test_unknown_method_and_parameter(
    llamas: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pivot, targets = llamas
    models = [{"model": str(t)} for t in targets]
    err = _run(
        tmp_path, capsys, {"method": "frankenmerge", "base_model": str(pivot), "models": models}
    )
    assert "merge.yaml: field method:" in err and "'varm'" in err
    body = {
        "method": "ties",
        "base_model": str(pivot),
        "models": models,
        "parameters": {"weight": 0.5, "densty": 0.5},
    }
    err = _run(tmp_path, capsys, body)
    assert "parameters.densty: ties has no such parameter" in err
    err = _run(tmp_path, capsys, {"method": "linear", "models": models})
    assert "linear needs parameter 'weight'" in err
    body = {"method": "slerp", "base_model": str(pivot), "models": models, "parameters": {"t": 0.5}}
    err = _run(tmp_path, capsys, body)
    assert "slerp:" in err and "exactly 2 inputs" in err


def test_bad_yaml_and_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _run(tmp_path, capsys, "method: varm\nmodels: [a\n")
    assert "merge.yaml:" in err and "not valid YAML" in err
    err = _run(
        tmp_path, capsys, {"method": "varm", "models": [{"model": "x"}], "granularty": "layer"}
    )
    assert "field granularty: Extra inputs are not permitted" in err


def _varm_config(tmp_path: Path, pivot: Path, targets: list[Path]) -> Path:
    config = tmp_path / "merge.yaml"
    body = {
        "method": "varm",
        "base_model": str(pivot),
        "models": [{"model": str(t)} for t in targets],
    }
    config.write_text(yaml.safe_dump(body))
    return config


def _merge(config: Path, output: Path, *flags: str) -> int:
    return main(["merge", str(config), "--output", str(output), "--quiet", *flags])


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_overwrite_replaces_only_a_previous_merge(
    llamas: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder no merge wrote (the user's notes.txt) is refused with or without --overwrite
    and left as it was; a previous merge's output is refused without --overwrite and
    replaced with it."""
    pivot, targets = llamas
    config = _varm_config(tmp_path, pivot, targets)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    capsys.readouterr()
    for flags in ((), ("--overwrite",)):
        assert _merge(config, out, *flags) == 2
        assert "holds files no merge wrote (no fusebench_merge.yaml)" in _one_line(capsys)
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    assert _merge(config, out) == 0  # an empty folder is fine
    first = (out / "model.safetensors").stat().st_ino
    capsys.readouterr()
    assert _merge(config, out) == 2
    assert "exists and is not empty (use --overwrite)" in _one_line(capsys)
    assert _merge(config, out, "--overwrite") == 0
    assert (out / "model.safetensors").stat().st_ino != first  # a new file
    assert (out / "fusebench_merge.yaml").is_file()
    assert not list(tmp_path.glob(".out.partial-*")) and not list(tmp_path.glob(".out.stale-*"))


def test_output_that_is_an_input_is_refused(
    llamas: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Into the pivot's own directory, or a target's, or a folder holding one: refused, even
    when the input is itself a previous merge's output (it holds the record)."""
    pivot, targets = llamas
    inputs = tmp_path / "inputs"
    shutil.copytree(pivot, inputs / "pivot")
    shutil.copytree(targets[0], inputs / "target")
    (inputs / "target" / "fusebench_merge.yaml").write_text("method: varm\n")
    config = _varm_config(tmp_path, inputs / "pivot", [inputs / "target"])
    before = {p: p.read_bytes() for p in inputs.rglob("*") if p.is_file()}
    capsys.readouterr()
    cases = [
        (inputs / "pivot", "is base_model"),
        (inputs / "target", "is models.0.model"),
        (inputs, "holds base_model"),
    ]
    for output, what in cases:
        for flags in ((), ("--overwrite",)):
            assert _merge(config, output, *flags) == 2
            err = _one_line(capsys)
            assert f"output {output}: {what}" in err and "an input of this merge" in err, err
    assert {p: p.read_bytes() for p in inputs.rglob("*") if p.is_file()} == before


def test_output_that_is_a_file_is_refused(
    llamas: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pivot, targets = llamas
    config = _varm_config(tmp_path, pivot, targets)
    file = tmp_path / "model.bin"
    file.write_text("mine")
    capsys.readouterr()
    for output, tail in ((file, "not a directory"), (file / "sub", f"({file} is a file)")):
        for flags in ((), ("--overwrite",)):
            assert _merge(config, output, *flags) == 2
            err = _one_line(capsys)
            assert f"output {output}: not a directory" in err and tail in err, err
    assert file.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merge.yaml", "model.bin"]


@pytest.mark.parametrize("name", ["merge_varm.yaml", "merge_ties.yaml"])
def test_example_configs_validate(name: str) -> None:
    from fusion.merge.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[3] / "configs" / name)
    assert spec.base_model == "zoo/tiny-llama" and len(spec.models) == 3
