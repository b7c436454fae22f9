"""Real inputs for the reports tests: LogicKor's published judged files, and run directories
made by ``fusebench eval`` with tiny models (a base, and a "fused" copy with other weights)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TASKS = "kobest_boolq,nsmc,korunsmile"
LIMIT = 20


@pytest.fixture(scope="session")
def logickor_dir(data_root: Path) -> Path:
    path = data_root / "logickor" / "evaluated"
    if not path.is_dir():
        pytest.fail(f"{path}: LogicKor's judged files are missing from the data directory")
    return path


def _perturbed_copy(source: Path, target: Path, seed: int = 1, scale: float = 2.0) -> Path:
    """The same architecture and tokenizer with other weights: a stand-in for a fused model."""
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(source, target)
    model = AutoModelForCausalLM.from_pretrained(source)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale * p.std().clamp(min=1e-3))
    model.save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def runs(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """runs["base"] and runs["fused"]: kobest_boolq, nsmc and korunsmile at 0 and 2 shots."""
    from harness.cli import main

    root = tmp_path_factory.mktemp("report-runs")
    models = {
        "base": zoo / "tiny-llama",
        "fused": _perturbed_copy(zoo / "tiny-llama", root / "tiny-llama-fused"),
    }
    out = {}
    for name, model in models.items():
        out[name] = root / name
        argv = [
            "eval",
            str(model),
            "--tasks",
            TASKS,
            "--num-fewshot",
            "0,2",
            "--limit",
            str(LIMIT),
            "--output",
            str(out[name]),
        ]
        assert main(argv) == 0
    return out


@pytest.fixture(scope="session")
def lmeval_cli_output(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Output as lm-eval's own CLI writes it (results_<date>.json, samples_<task>_<date>.jsonl),
    through the same EvaluationTracker calls its ``run`` command makes."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    from tasks import catalog

    out = tmp_path_factory.mktemp("lm-eval-cli")
    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model="hf",
        model_args=f"pretrained={zoo / 'tiny-gpt2'}",
        tasks=["nsmc", "korunsmile"],
        limit=8,
        log_samples=True,
        device="cpu",
        task_manager=catalog.task_manager(),
        evaluation_tracker=tracker,
    )
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    return out


@pytest.fixture(scope="session")
def bpb_runs(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """runs["base"] and runs["fused"] of nsmc (higher is better) and ko_bpb (lower is better)
    at 0 shots, the only shot count ko_bpb takes."""
    from harness.cli import main

    root = tmp_path_factory.mktemp("bpb-runs")
    models = {
        "base": zoo / "tiny-mistral",
        "fused": _perturbed_copy(zoo / "tiny-mistral", root / "tiny-mistral-fused", scale=0.5),
    }
    out = {}
    for name, model in models.items():
        out[name] = root / name
        argv = ["eval", str(model), "--tasks", "nsmc,ko_bpb", "--num-fewshot", "0"]
        assert main([*argv, "--limit", str(LIMIT), "--output", str(out[name]), "--quiet"]) == 0
    return out
