"""Every method merges three tiny-llama targets into a model that loads and generates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from harness.cli import main

# Per method: the config keys beyond method / base_model / models (FuseChat's baselines).
METHODS: dict[str, dict] = {
    "linear": {"parameters": {"weight": 1.0}},
    "task_arithmetic": {"parameters": {"weight": 0.3}},
    "ties": {"parameters": {"weight": 0.2, "density": 0.6}},
    "dare_ties": {"parameters": {"weight": 0.3, "density": 0.6}},
    "dare_linear": {"parameters": {"weight": 0.3, "density": 0.6}},
    "slerp": {"parameters": {"t": 0.5}},
    "model_stock": {},
    "sce": {"parameters": {"select_topk": 0.1}},
    "varm": {"granularity": "matrix"},
}


def _config(tmp_path: Path, method: str, pivot: Path, targets: list[Path]) -> Path:
    models = targets[:1] if method == "slerp" else targets  # slerp: the pivot and one target
    body = {
        "method": method,
        "base_model": str(pivot),
        "models": [{"model": str(m)} for m in models],
        "output": str(tmp_path / f"merged-{method}"),
        **METHODS[method],
    }
    if method == "linear":  # mergekit would count a base_model as a fourth input
        del body["base_model"]
    path = tmp_path / f"{method}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize("method", list(METHODS))
def test_method_loads_and_generates(
    method: str, llamas: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pivot, targets = llamas
    assert main(["merge", str(_config(tmp_path, method, pivot, targets)), "--quiet"]) == 0
    out = tmp_path / f"merged-{method}"
    merged = load_file(str(out / "model.safetensors"))
    before = load_file(str(pivot / "model.safetensors"))
    assert merged.keys() == before.keys()
    moved = [name for name in merged if not torch.equal(merged[name], before[name])]
    assert moved, f"{method} returned the pivot unchanged"
    assert all(torch.isfinite(t).all() for t in merged.values())

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    inputs = tokenizer("이 영화 정말", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 5
    assert tokenizer.decode(generated[0], skip_special_tokens=True).startswith("이 영화 정말")


def test_linear_is_the_weighted_mean(llamas: tuple[Path, list[Path]], tmp_path: Path) -> None:
    """Equal linear weights: the plain mean of the three targets, tensor by tensor."""
    pivot, targets = llamas
    assert main(["merge", str(_config(tmp_path, "linear", pivot, targets)), "--quiet"]) == 0
    merged = load_file(str(tmp_path / "merged-linear" / "model.safetensors"))
    inputs = [load_file(str(t / "model.safetensors")) for t in targets]
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, sum(s[name] for s in inputs) / 3)


def test_varm_layer_weights_follow_the_distance(
    llamas: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    """Target k moved with noise scale k: per-model VaRM weights grow as k^2 (1 : 4 : 9)."""
    import json

    pivot, targets = llamas
    config = _config(tmp_path, "varm", pivot, targets)
    config.write_text(config.read_text().replace("granularity: matrix", "granularity: model"))
    assert main(["merge", str(config), "--quiet"]) == 0
    weights = json.loads((tmp_path / "merged-varm" / "varm_weights.json").read_text())["weights"]
    assert list(weights) == ["model"]
    assert weights["model"] == pytest.approx([1 / 14, 4 / 14, 9 / 14], rel=0.02)
