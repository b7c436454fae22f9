"""`fusebench vocab train`: EEVE stages on the DeepSpeed trainer; old embedding rows frozen exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fusion.train.freeze import apply_trainable
from fusion.vocab.rows import new_rows
from harness.cli import main

CORPUS = "kobest_v1/hellaswag/train.tsv"
EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"


@pytest.fixture(scope="module")
def expanded(zoo: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vocab-train") / "tiny-llama-ko"
    args = [
        "vocab",
        "expand",
        "--model",
        str(zoo / "tiny-llama"),
        "--corpus",
        str(data_root / CORPUS),
        "--add",
        "200",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    return out


def _config(tmp_path: Path, model: Path, data_root: Path, stages: list[dict], **train) -> Path:
    config = {
        "model": str(model),
        "work_dir": "work",
        "corpus": {
            "path": str(data_root / CORPUS),
            "format": "tsv",
            "text_field": "context",
            "max_rows": 16,
            "max_chars": 300,
        },
        # weight decay on, so a partly frozen matrix in a decayed group would show it
        "train": {
            "precision": "fp32",
            "micro_batch_size": 4,
            "max_length": 256,
            "weight_decay": 0.1,
            "save_every": 2,
            **train,
        },
        "stages": stages,
    }
    file = tmp_path / "vocab-train.yaml"
    file.write_text(yaml.safe_dump(config), encoding="utf-8")
    return file


def _weights(model: Path) -> dict[str, torch.Tensor]:
    return load_file(model / "model.safetensors")


def test_hook_zeroes_old_gradient_rows(expanded: Path) -> None:
    """In-process, no DeepSpeed: the hook leaves gradient only on the new rows."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(expanded)
    rows = new_rows(expanded)
    partial = apply_trainable(model, ["new_input_embeddings", "all_output_embeddings"], rows.ids)
    assert partial == [model.get_input_embeddings().weight]
    ids = torch.tensor([[1, rows.ids[0], 5, rows.ids[1], 7]])
    model(input_ids=ids, labels=ids).loss.backward()
    grad = model.get_input_embeddings().weight.grad
    mask = rows.mask()
    assert torch.count_nonzero(grad[~mask]) == 0 and torch.count_nonzero(grad[mask]) > 0
    assert model.get_output_embeddings().weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if "layers" in n)


@pytest.mark.parametrize(
    ("zero_stage", "nproc"),
    [
        (0, 1),
        pytest.param(2, 2, marks=pytest.mark.slow),
        pytest.param(3, 2, marks=pytest.mark.slow),
    ],
)
def test_old_rows_stay_bit_identical(
    expanded: Path, data_root: Path, tmp_path: Path, run_fusebench, zero_stage: int, nproc: int
) -> None:
    """EEVE stage 1 (new input rows) then stage 2 (new output rows), on real DeepSpeed ranks."""
    stages = [
        {
            "name": "new_input_embeddings",
            "trainable": ["new_input_embeddings"],
            "learning_rate": 1e-2,
            "max_steps": 2,
        },
        {
            "name": "new_output_embeddings",
            "trainable": ["new_output_embeddings"],
            "learning_rate": 1e-2,
            "max_steps": 2,
        },
    ]
    config = _config(tmp_path, expanded, data_root, stages, zero_stage=zero_stage)
    done = run_fusebench("vocab", "train", str(config), "--nproc", str(nproc))
    assert done.returncode == 0, done.stderr[-3000:]
    new = new_rows(expanded).mask()
    start = _weights(expanded)
    one = _weights(tmp_path / "work" / "stages" / "1" / "final")
    two = _weights(tmp_path / "work" / "stages" / "2" / "final")
    # stage 1: old input rows bit-identical, new ones moved; output matrix and layers untouched
    assert torch.equal(one[EMBED][~new], start[EMBED][~new])
    assert not torch.equal(one[EMBED][new], start[EMBED][new])
    assert all(torch.equal(one[k], start[k]) for k in start if k != EMBED)
    # stage 2 starts from stage 1: old output rows bit-identical, new ones moved
    assert torch.equal(two[HEAD][~new], start[HEAD][~new])
    assert not torch.equal(two[HEAD][new], start[HEAD][new])
    assert all(torch.equal(two[k], one[k]) for k in start if k != HEAD)


@pytest.mark.slow
def test_multi_stage_run_completes_and_resumes(
    expanded: Path, data_root: Path, tmp_path: Path, run_fusebench
) -> None:
    """EEVE stages 1, 4 and 6 (one by token budget); a rerun skips them; a new stage runs."""
    stages = [
        {
            "name": "new_input_embeddings",
            "trainable": ["new_input_embeddings"],
            "learning_rate": 1e-3,
            "max_steps": 2,
        },
        {
            "name": "all_output_embeddings",
            "trainable": ["all_output_embeddings"],
            "learning_rate": 1e-3,
            "tokens": 1500,
        },
    ]
    config = _config(tmp_path, expanded, data_root, stages, zero_stage=2)
    done = run_fusebench("vocab", "train", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "work"
    logs = {n: (work / "stages" / str(n) / "log.jsonl").read_text().splitlines() for n in (1, 2)}
    assert len(logs[1]) == 2
    budget = [json.loads(line)["tokens"] for line in logs[2]]
    assert sum(budget) >= 1500 - max(budget) and len(budget) >= 1  # about the budget
    one, two = (_weights(work / "stages" / str(n) / "final") for n in (1, 2))
    assert not torch.equal(one[HEAD], two[HEAD]) and torch.equal(one[EMBED], two[EMBED])

    stages.append({"name": "all", "trainable": ["all"], "learning_rate": 1e-4, "max_steps": 2})
    config = _config(tmp_path, expanded, data_root, stages, zero_stage=2)
    again = run_fusebench("vocab", "train", str(config))
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("finished earlier") == 2
    assert again.stdout.splitlines()[-1] == f"model: {work / 'stages' / '3' / 'final'}"
    for n in (1, 2):
        assert (work / "stages" / str(n) / "log.jsonl").read_text().splitlines() == logs[n]
    three = _weights(work / "stages" / "3" / "final")
    assert all(not torch.equal(three[k], two[k]) for k in (EMBED, HEAD))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(work / "stages" / "3" / "final")
    tokenizer = AutoTokenizer.from_pretrained(work / "stages" / "3" / "final")
    ids = tokenizer("눈에 이물질이", return_tensors="pt")["input_ids"]
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] > ids.shape[1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {
                "stages": [
                    {
                        "name": "s1",
                        "trainable": ["new_input_embeddings", "bias_terms"],
                        "learning_rate": 1e-3,
                        "max_steps": 1,
                    }
                ]
            },
            "field stages.0: stage 's1': unknown group 'bias_terms'",
        ),
        (
            {"stages": [{"name": "s1", "trainable": ["all"], "learning_rate": 1e-3}]},
            "stage 's1': give exactly one of max_steps and tokens",
        ),
        ({"train": {"learning_rate": 1e-3}}, "train.learning_rate is set per stage"),
        ({"model": "missing-model"}, "field model:"),
    ],
)
def test_bad_config_is_one_line(
    expanded: Path, data_root: Path, tmp_path: Path, run_fusebench, change: dict, expected: str
) -> None:
    stage = {"name": "s1", "trainable": ["all"], "learning_rate": 1e-3, "max_steps": 1}
    file = _config(tmp_path, expanded, data_root, [stage])
    config = yaml.safe_load(file.read_text()) | change
    file.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = run_fusebench("vocab", "train", str(file))
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigterm_mid_stage_then_rerun_resumes_exactly(
    expanded: Path, data_root: Path, tmp_path: Path, fusebench_env: dict[str, str]
) -> None:
    """A stage stopped by SIGTERM checkpoints; the rerun skips stage 1 and continues stage 2
    from its checkpoint, logging exactly the losses of an uninterrupted run."""
    stages = [
        {
            "name": "new_input_embeddings",
            "trainable": ["new_input_embeddings"],
            "learning_rate": 1e-3,
            "max_steps": 1,
        },
        {"name": "all", "trainable": ["all"], "learning_rate": 1e-4, "max_steps": 40},
    ]

    def start(name: str) -> tuple[subprocess.Popen, Path]:
        folder = tmp_path / name
        folder.mkdir()
        config = _config(folder, expanded, data_root, stages, zero_stage=2, save_every=100)
        env = fusebench_env
        command = [str(Path(sys.executable).parent / "fusebench"), "vocab", "train", str(config)]
        run = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return run, folder / "work" / "stages" / "2"

    def records(stage: Path) -> list[dict]:
        rows = [json.loads(line) for line in (stage / "log.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if k != "time"} for row in rows]

    reference, ref_stage = start("ref")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    run, stage = start("cut")
    deadline = time.monotonic() + 240
    while not ((stage / "log.jsonl").is_file() and len(records(stage)) >= 3):
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=120) == 130
    message = run.stderr.read()
    assert "interrupted after step" in message and "Traceback" not in message
    stopped = json.loads((stage / "status.json").read_text())["step"]
    assert 3 <= stopped < 40 and not (stage / "final").exists()

    env = fusebench_env
    config = tmp_path / "cut" / "vocab-train.yaml"
    again = subprocess.run(
        [str(Path(sys.executable).parent / "fusebench"), "vocab", "train", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "stage 1/2" in again.stderr and "finished earlier" in again.stderr
    assert f"resumed at step {stopped}" in again.stderr
    assert records(stage) == records(ref_stage)
    want, got = _weights(ref_stage / "final"), _weights(stage / "final")
    assert all(torch.equal(want[k], got[k]) for k in want)
