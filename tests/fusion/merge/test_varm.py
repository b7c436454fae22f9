"""VaRM against hand computations on tiny tensors, at all three granularities."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from fusion.merge.run import merge
from fusion.merge.spec import MergeSpec
from fusion.merge.varm import group_of, varm_weights

EMBED = "model.embed.weight"
A = "model.layers.0.a.weight"
B = "model.layers.0.b.weight"


def _toy(folder: Path, tensors: dict[str, list[list[float]]]) -> str:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["ToyForCausalLM"]}))
    save_file({k: torch.tensor(v, dtype=torch.float64) for k, v in tensors.items()},
              str(folder / "model.safetensors"))  # fmt: skip
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
    spec = MergeSpec(method="varm", base_model=pivot, models=[{"model": m} for m in models],
                     granularity=granularity)  # fmt: skip
    merge(spec, out, progress=False)
    return load_file(str(out / "model.safetensors"))


def _expect(w1: Fraction, w2: Fraction, one: float, two: list[list[float]]) -> torch.Tensor:
    return torch.tensor([[float(w1 * Fraction(one) + w2 * Fraction(x)) for x in row] for row in two],
                        dtype=torch.float64)  # fmt: skip


def test_weights_normalise_and_all_zero_is_equal() -> None:
    assert varm_weights([1.0, 3.0]) == [0.25, 0.75]
    assert varm_weights([0.0, 0.0, 0.0]) == [1 / 3, 1 / 3, 1 / 3]
    assert varm_weights([0.0, 2.0]) == [0.0, 1.0]


def test_groups() -> None:
    assert group_of(A, "matrix") == A
    assert group_of(A, "layer") == group_of(B, "layer") == "model.layers.0"
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


@pytest.mark.parametrize("granularity", ["matrix", "layer", "model"])
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
