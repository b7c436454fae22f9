"""Bad merge input through the real CLI: one red line naming the problem, exit 2."""

from __future__ import annotations

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


def test_existing_output_is_kept(
    llamas: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pivot, targets = llamas
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    config = tmp_path / "merge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "method": "varm",
                "base_model": str(pivot),
                "models": [{"model": str(t)} for t in targets],
            }
        )
    )
    assert main(["merge", str(config), "--output", str(tmp_path / "out"), "--quiet"]) == 2
    assert "exists and is not empty (use --overwrite)" in capsys.readouterr().err
    assert (
        main(["merge", str(config), "--output", str(tmp_path / "out"), "--quiet", "--overwrite"])
        == 0
    )
    assert not (tmp_path / "out" / "keep.txt").exists()
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".out.partial-*"))


@pytest.mark.parametrize("name", ["merge_varm.yaml", "merge_ties.yaml"])
def test_example_configs_validate(name: str) -> None:
    from fusion.merge.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[3] / "configs" / name)
    assert spec.base_model == "zoo/tiny-llama" and len(spec.models) == 3
