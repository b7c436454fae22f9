"""VaRM against hand computations on tiny tensors, at every granularity; FuseChat's layer
statistic (`layer_fusechat`) also against a plain-torch reference written from FuseChat's
definition (FuseChat/merge/VaRM/analysis.py sums each layer's per-tensor means of the
squared change), on tiny-llama copies whose tensors moved by different amounts."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from fusion.chat import load_chat_config, merge_spec
from fusion.config import ConfigError
from fusion.merge.run import merge
from fusion.merge.spec import MergeSpec, load_spec
from fusion.merge.varm import group_of, varm_weights
from harness.cli import main

EMBED = "model.embed.weight"
A = "model.layers.0.a.weight"
B = "model.layers.0.b.weight"
NORM = "model.layers.0.norm.weight"


def _toy(folder: Path, tensors: dict[str, list[list[float]]]) -> str:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["ToyForCausalLM"]}))
    save_file(
        {k: torch.tensor(v, dtype=torch.float64) for k, v in tensors.items()},
        str(folder / "model.safetensors"),
    )
    return str(folder)


@pytest.fixture
def toys(tmp_path: Path) -> tuple[str, list[str]]:
    """Pivot all zeros; target 1 moves every element by 1, target 2 moves a few by 3 or 2."""
    zeros = [[0.0, 0.0], [0.0, 0.0]]
    ones = [[1.0, 1.0], [1.0, 1.0]]
    pivot = _toy(tmp_path / "pivot", {EMBED: zeros, A: zeros, B: zeros})
    one = _toy(tmp_path / "one", {EMBED: ones, A: ones, B: ones})
    two = _toy(
        tmp_path / "two",
        {EMBED: [[3.0, 0.0], [0.0, 0.0]], A: [[3.0, 0.0], [0.0, 0.0]], B: [[0.0, 2.0], [0.0, 0.0]]},
    )
    return pivot, [one, two]


def _merged(pivot: str, models: list[str], granularity: str, out: Path) -> dict[str, torch.Tensor]:
    spec = MergeSpec(
        method="varm",
        base_model=pivot,
        models=[{"model": m} for m in models],
        granularity=granularity,
    )
    merge(spec, out, progress=False)
    return load_file(str(out / "model.safetensors"))


def _expect(w1: Fraction, w2: Fraction, one: float, two: list[list[float]]) -> torch.Tensor:
    return torch.tensor(
        [[float(w1 * Fraction(one) + w2 * Fraction(x)) for x in row] for row in two],
        dtype=torch.float64,
    )


def test_weights_normalise_and_all_zero_is_equal() -> None:
    assert varm_weights([1.0, 3.0]) == [0.25, 0.75]
    assert varm_weights([0.0, 0.0, 0.0]) == [1 / 3, 1 / 3, 1 / 3]
    assert varm_weights([0.0, 2.0]) == [0.0, 1.0]


def test_groups() -> None:
    assert group_of(A, "matrix") == A
    assert group_of(A, "layer") == group_of(B, "layer") == "model.layers.0"
    assert group_of(A, "layer_fusechat") == "model.layers.0"
    assert group_of("transformer.h.11.attn.c_attn.weight", "layer") == "transformer.h.11"
    assert group_of(EMBED, "layer") == EMBED
    assert group_of(EMBED, "model") == group_of(A, "model") == "model"


def test_matrix(toys: tuple[str, list[str]], tmp_path: Path) -> None:
    pivot, models = toys
    out = _merged(pivot, models, "matrix", tmp_path / "out")
    # embed and a: v1 = 4/4 = 1, v2 = 9/4 -> w = 4/13, 9/13;  b: v1 = 1, v2 = 4/4 = 1 -> 1/2, 1/2
    w1, w2 = Fraction(4, 13), Fraction(9, 13)
    torch.testing.assert_close(out[EMBED], _expect(w1, w2, 1, [[3, 0], [0, 0]]))
    torch.testing.assert_close(out[A], _expect(w1, w2, 1, [[3, 0], [0, 0]]))
    half = Fraction(1, 2)
    torch.testing.assert_close(out[B], _expect(half, half, 1, [[0, 2], [0, 0]]))
    torch.testing.assert_close(out[B], torch.tensor([[0.5, 1.5], [0.5, 0.5]], dtype=torch.float64))
    report = json.loads((tmp_path / "out" / "varm_weights.json").read_text())
    assert report["weights"][B] == [0.5, 0.5]


def test_layer(toys: tuple[str, list[str]], tmp_path: Path) -> None:
    pivot, models = toys
    out = _merged(pivot, models, "layer", tmp_path / "out")
    # layer 0 = a + b (8 elements): v1 = 8/8 = 1, v2 = (9 + 4)/8 -> w = 8/21, 13/21
    w1, w2 = Fraction(8, 21), Fraction(13, 21)
    torch.testing.assert_close(out[A], _expect(w1, w2, 1, [[3, 0], [0, 0]]))
    torch.testing.assert_close(out[B], _expect(w1, w2, 1, [[0, 2], [0, 0]]))
    # the embedding is a group of its own: as in the matrix case
    torch.testing.assert_close(
        out[EMBED], _expect(Fraction(4, 13), Fraction(9, 13), 1, [[3, 0], [0, 0]])
    )


def test_model(toys: tuple[str, list[str]], tmp_path: Path) -> None:
    pivot, models = toys
    out = _merged(pivot, models, "model", tmp_path / "out")
    # all 12 elements: v1 = 12/12 = 1, v2 = (9 + 9 + 4)/12 -> w = 12/34, 22/34
    w1, w2 = Fraction(12, 34), Fraction(22, 34)
    for name, two in ((EMBED, [[3, 0], [0, 0]]), (A, [[3, 0], [0, 0]]), (B, [[0, 2], [0, 0]])):
        torch.testing.assert_close(out[name], _expect(w1, w2, 1, two))


@pytest.mark.parametrize("granularity", ["matrix", "layer", "layer_fusechat", "model"])
def test_no_change_gives_equal_weights(tmp_path: Path, granularity: str) -> None:
    values = {
        EMBED: [[1.0, -2.0], [0.5, 4.0]],
        A: [[3.0, 1.0], [2.0, 0.0]],
        B: [[0.0, 0.0], [7.0, 1.0]],
    }
    pivot = _toy(tmp_path / "pivot", values)
    same = [_toy(tmp_path / f"same{i}", values) for i in range(3)]
    out = _merged(pivot, same, granularity, tmp_path / "out")
    for name, rows in values.items():
        torch.testing.assert_close(out[name], torch.tensor(rows, dtype=torch.float64))
    weights = json.loads((tmp_path / "out" / "varm_weights.json").read_text())["weights"]
    assert all(w == [1 / 3] * 3 for w in weights.values())


def _copies(source: Path, root: Path, count: int) -> list[Path]:
    """``count`` copies of ``source`` in which every tensor moved by its own random scale."""
    state = load_file(str(source / "model.safetensors"))
    paths = []
    for index in range(count):
        generator = torch.Generator().manual_seed(100 + index)
        out = root / f"moved-{index}"
        shutil.copytree(source, out)
        moved = {}
        for name, tensor in sorted(state.items()):
            scale = 0.001 + 0.1 * float(torch.rand((), generator=generator))
            noise = torch.randn(tensor.shape, generator=generator) * scale
            moved[name] = (tensor.double() + noise.double()).to(tensor.dtype).contiguous()
        save_file(moved, str(out / "model.safetensors"), metadata={"format": "pt"})
        paths.append(out)
    return paths


def _reference(pivot: Path, models: list[Path]) -> tuple[dict, dict]:
    """FuseChat's layer weights from the definition: per layer (a ``.layers.N.`` in the name),
    v_m = sum over its tensors of mean((theta_m - theta_pivot)^2); w_m = v_m / sum v_m;
    tensors outside the layers: w_m = 1 / M. Returns (weights by group, merged tensors)."""
    base = load_file(str(pivot / "model.safetensors"))
    states = [load_file(str(m / "model.safetensors")) for m in models]
    variances: dict[str, list[float]] = {}
    for name, pivot_tensor in base.items():
        if ".layers." not in name:
            continue
        group = name.split(".layers.")[0] + ".layers." + name.split(".layers.")[1].split(".")[0]
        row = variances.setdefault(group, [0.0] * len(models))
        for index, state in enumerate(states):
            row[index] += ((state[name].double() - pivot_tensor.double()) ** 2).mean().item()
    weights = {group: [v / sum(row) for v in row] for group, row in variances.items()}
    merged = {}
    for name in base:
        if ".layers." in name:
            group = name.split(".layers.")[0] + ".layers." + name.split(".layers.")[1].split(".")[0]
            w = weights[group]
        else:
            w = weights[name] = [1.0 / len(models)] * len(models)
        merged[name] = sum(wm * s[name].double() for wm, s in zip(w, states, strict=True))
    return weights, merged


def test_layer_fusechat_matches_the_reference(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through `fusebench merge CONFIG`: weights and merged tensors as the reference, 1e-6."""
    pivot = zoo / "tiny-llama"
    models = _copies(pivot, tmp_path, 3)
    config = tmp_path / "merge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "method": "varm",
                "base_model": str(pivot),
                "granularity": "layer_fusechat",
                "models": [{"model": str(m)} for m in models],
            }
        )
    )
    assert main(["merge", str(config), "--output", str(tmp_path / "out"), "--quiet"]) == 0
    capsys.readouterr()
    weights, merged = _reference(pivot, models)
    report = json.loads((tmp_path / "out" / "varm_weights.json").read_text())
    assert report["granularity"] == "layer_fusechat"
    assert set(report["weights"]) == set(weights)
    assert any(name.startswith("model.layers.") for name in weights)
    for group, expected in weights.items():
        assert report["weights"][group] == pytest.approx(expected, abs=1e-6), group
    out = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert set(out) == set(merged)
    for name, expected in merged.items():
        torch.testing.assert_close(out[name].double(), expected, atol=1e-6, rtol=0, msg=name)
    # the inputs moved unevenly, so the pooled statistic gives other layer weights
    pooled = tmp_path / "pooled.yaml"
    pooled.write_text(
        yaml.safe_dump({**yaml.safe_load(config.read_text()), "granularity": "layer"})
    )
    assert main(["merge", str(pooled), "--output", str(tmp_path / "pooled"), "--quiet"]) == 0
    other = json.loads((tmp_path / "pooled" / "varm_weights.json").read_text())["weights"]
    layer = next(group for group in weights if group.startswith("model.layers."))
    assert other[layer] != pytest.approx(weights[layer], abs=1e-3)


def test_toy_layer_fusechat(toys: tuple[str, list[str]], tmp_path: Path) -> None:
    pivot, models = toys
    out = _merged(pivot, models, "layer_fusechat", tmp_path / "out")
    # layer 0 = a + b: v1 = 4/4 + 4/4 = 2, v2 = 9/4 + 4/4 = 13/4 -> w = 8/21, 13/21 (equal
    # sizes: the same as pooled); the embedding is outside the layers: a plain average
    w1, w2 = Fraction(8, 21), Fraction(13, 21)
    torch.testing.assert_close(out[A], _expect(w1, w2, 1, [[3, 0], [0, 0]]))
    torch.testing.assert_close(out[B], _expect(w1, w2, 1, [[0, 2], [0, 0]]))
    half = Fraction(1, 2)
    torch.testing.assert_close(out[EMBED], _expect(half, half, 1, [[3, 0], [0, 0]]))


def test_pooled_and_fusechat_differ_when_sizes_differ(tmp_path: Path) -> None:
    """A 2x2 matrix and a 2-vector norm in one layer. Target 1 moves every element of the
    matrix by 1, target 2 every element of the norm by 1. Pooled: v1 = 4/6, v2 = 2/6 ->
    2/3, 1/3. FuseChat's: v1 = 1 + 0, v2 = 0 + 1 -> 1/2, 1/2."""
    zeros = {A: [[0.0, 0.0], [0.0, 0.0]], NORM: [[0.0, 0.0]]}
    pivot = _toy(tmp_path / "pivot", zeros)
    one = _toy(tmp_path / "one", {A: [[1.0, 1.0], [1.0, 1.0]], NORM: [[0.0, 0.0]]})
    two = _toy(tmp_path / "two", {A: [[0.0, 0.0], [0.0, 0.0]], NORM: [[1.0, 1.0]]})
    pooled = _merged(pivot, [one, two], "layer", tmp_path / "pooled")
    fusechat = _merged(pivot, [one, two], "layer_fusechat", tmp_path / "fusechat")
    torch.testing.assert_close(pooled[A], torch.full((2, 2), 2 / 3, dtype=torch.float64))
    torch.testing.assert_close(pooled[NORM], torch.full((1, 2), 1 / 3, dtype=torch.float64))
    torch.testing.assert_close(fusechat[A], torch.full((2, 2), 0.5, dtype=torch.float64))
    torch.testing.assert_close(fusechat[NORM], torch.full((1, 2), 0.5, dtype=torch.float64))
    weights = {
        name: json.loads((tmp_path / name / "varm_weights.json").read_text())["weights"]
        for name in ("pooled", "fusechat")
    }
    assert weights["pooled"]["model.layers.0"] == pytest.approx([2 / 3, 1 / 3])
    assert weights["fusechat"]["model.layers.0"] == pytest.approx([0.5, 0.5])


def test_merge_config_accepts_layer_fusechat(tmp_path: Path) -> None:
    config = tmp_path / "merge.yaml"
    body = {"method": "varm", "base_model": "pivot", "models": [{"model": "target"}]}
    config.write_text(yaml.safe_dump({**body, "granularity": "layer_fusechat"}))
    assert load_spec(config).granularity == "layer_fusechat"
    config.write_text(yaml.safe_dump({**body, "granularity": "layers_fusechat"}))
    with pytest.raises(ConfigError, match="field granularity"):
        load_spec(config)


def test_chat_config_accepts_layer_fusechat(zoo: Path, tmp_path: Path) -> None:
    raw = {
        "work_dir": "work",
        "pivot": {"name": "tiny-llama", "path": str(zoo / "tiny-llama")},
        "sources": [{"name": "tiny-gpt2", "path": str(zoo / "tiny-gpt2")}],
        "corpus": {"shared": "nsmc"},
        "merge": {"method": "varm", "granularity": "layer_fusechat"},
    }
    config = tmp_path / "chat.yaml"
    config.write_text(yaml.safe_dump(raw))
    chat = load_chat_config(config)
    spec = merge_spec(chat, {"tiny-gpt2": tmp_path / "final"})
    assert spec.granularity == "layer_fusechat"
    raw["merge"]["granularity"] = "fusechat"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="field merge.granularity"):
        load_chat_config(config)
