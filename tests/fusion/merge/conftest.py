"""Merge inputs: three perturbed copies of the zoo's tiny-llama (one architecture, one tokenizer)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def perturbed_copies(source: Path, root: Path, count: int, scale: float = 0.02) -> list[Path]:
    """``count`` copies of ``source`` with seeded Gaussian noise added to every weight."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source)
    original = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    paths = []
    for index in range(count):
        generator = torch.Generator().manual_seed(index + 1)
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                noise = torch.randn(tensor.shape, generator=generator) * scale * (index + 1)
                tensor.copy_(original[name] + noise)
        out = root / f"target-{index}"
        model.save_pretrained(out)
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (source / name).is_file():
                shutil.copy2(source / name, out / name)
        paths.append(out)
    return paths


@pytest.fixture(scope="session")
def llamas(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """(pivot, three targets): the pivot is the zoo model itself."""
    root = tmp_path_factory.mktemp("merge-inputs")
    return zoo / "tiny-llama", perturbed_copies(zoo / "tiny-llama", root, 3)
