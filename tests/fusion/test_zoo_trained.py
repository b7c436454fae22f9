"""The trained (demo) zoo: each model is trained on its recipe, deterministically, with its
recipe and held-out loss written beside it, and a rebuild is a no-op. Run here on a reduced
recipe (the same code, tiny step counts and sizes) so it takes seconds, not minutes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fusion import zoo


def test_demo_zoo_trains_records_and_caches(small_demo, tmp_path: Path) -> None:
    paths = zoo.build_zoo(tmp_path, kind="demo", progress=False)
    assert [p.name for p in paths] == ["target-llama", "hate-gpt2", "sentiment-qwen2"]
    manifest = json.loads((tmp_path / zoo.MANIFEST).read_text())
    for spec, path in zip(small_demo, paths, strict=True):
        training = json.loads((path / zoo.TRAINING).read_text())
        assert training["recipe"]["texts"] == list(spec.training.texts)
        assert set(training["text_sources"]) == set(spec.training.texts)
        assert 0 < training["held_out_loss"] < 12 and training["held_out_rows"] > 0
        # Training lowers the loss (30 steps at a high rate on a 1-layer model).
        assert training["loss_last_tenth"] < training["loss_first_tenth"]
        assert manifest["models"][spec.name]["held_out_loss"] == training["held_out_loss"]
    corpus = [json.loads(line)["text"] for line in (tmp_path / zoo.DEMO_CORPUS).open()]
    assert len(corpus) == 30
    stamps = {p: (p / "model.safetensors").stat().st_mtime_ns for p in paths}
    zoo.build_zoo(tmp_path, kind="demo", progress=False)  # cached: nothing rebuilt
    assert stamps == {p: (p / "model.safetensors").stat().st_mtime_ns for p in paths}


@pytest.mark.slow  # ~20-30 s: the default layer keeps under 15 min
def test_training_is_deterministic_for_a_seed(small_demo, tmp_path: Path) -> None:
    names = ["hate-gpt2"]
    first = zoo.build_zoo(tmp_path / "a", kind="demo", names=names, progress=False)[0]
    again = zoo.build_zoo(tmp_path / "b", kind="demo", names=names, progress=False)[0]
    other = zoo.build_zoo(tmp_path / "c", kind="demo", names=names, seed=1, progress=False)[0]
    weights = (first / "model.safetensors").read_bytes()
    assert weights == (again / "model.safetensors").read_bytes()
    assert weights != (other / "model.safetensors").read_bytes()


def test_recipe_change_rebuilds(small_demo, tmp_path: Path, monkeypatch) -> None:
    names = ["target-llama"]
    path = zoo.build_zoo(tmp_path, kind="demo", names=names, progress=False)[0]
    before = (path / "model.safetensors").read_bytes()
    longer = tuple(
        dataclasses.replace(s, training=dataclasses.replace(s.training, steps=31))
        for s in small_demo
    )
    monkeypatch.setitem(zoo.ZOOS, "demo", longer)
    zoo.build_zoo(tmp_path, kind="demo", names=names, progress=False)
    assert (path / "model.safetensors").read_bytes() != before
    assert json.loads((path / zoo.TRAINING).read_text())["recipe"]["steps"] == 31


@pytest.mark.slow  # ~20-30 s: the default layer keeps under 15 min
def test_weights_do_not_depend_on_jobs(small_demo, tmp_path: Path) -> None:
    """Two models trained side by side in worker processes get the same weights as one at a
    time in this process: each trains on one thread either way (fusion/zoo_parallel.py)."""
    import torch

    names = ["target-llama", "hate-gpt2"]
    threads = torch.get_num_threads()
    alone = zoo.build_zoo(tmp_path / "alone", kind="demo", names=names, jobs=1, progress=False)
    assert torch.get_num_threads() == threads  # the caller's thread count is restored
    together = zoo.build_zoo(tmp_path / "both", kind="demo", names=names, jobs=2, progress=False)
    for one, other in zip(alone, together, strict=True):
        assert (one / "model.safetensors").read_bytes() == (
            other / "model.safetensors"
        ).read_bytes()
        assert (
            json.loads((one / zoo.TRAINING).read_text())["held_out_loss"]
            == json.loads((other / zoo.TRAINING).read_text())["held_out_loss"]
        )


def test_a_failing_worker_is_named_and_stops_the_build(small_demo, tmp_path: Path) -> None:
    """A worker's error reaches the caller as one line naming the model; nothing half-built
    is left under a model's name."""
    import dataclasses

    import pytest

    from fusion.errors import FusionError

    broken = tuple(
        dataclasses.replace(s, training=dataclasses.replace(s.training, texts=("nope",)))
        if s.name == "hate-gpt2"
        else s
        for s in small_demo
    )
    zoo.ZOOS["demo"] = broken  # small_demo's monkeypatch restores the real recipes after
    with pytest.raises(FusionError, match="hate-gpt2.*unknown zoo text source 'nope'"):
        zoo.build_zoo(
            tmp_path, kind="demo", names=["target-llama", "hate-gpt2"], jobs=2, progress=False
        )
    assert not (tmp_path / "hate-gpt2").exists()
