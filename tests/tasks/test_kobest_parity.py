"""fusebench's kobest tasks ask lm-eval exactly what lm-eval's built-in kobest tasks ask.

The built-in YAMLs are loaded from the installed lm-eval, their Hub source replaced by the
same local data (nothing else changed), and both are run on one tiny model: every request's
context and continuation, and every loglikelihood, must be equal, zero-shot and few-shot.
"""

from __future__ import annotations

from pathlib import Path

import lm_eval
import pytest
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from tasks.catalog import TASKS_DIR
from tasks.loaders import load_benchmark

KOBEST = ["kobest_boolq", "kobest_copa", "kobest_hellaswag", "kobest_sentineg", "kobest_wic"]
LIMIT = 12


def builtin_config(task: str) -> dict:
    path = Path(lm_eval.__file__).parent / "tasks" / "kobest" / f"{task}.yaml"
    cfg = load_yaml(path, resolve_func=True)
    cfg.pop("dataset_path")
    cfg.pop("dataset_name")
    cfg["custom_dataset"] = lambda **_: load_benchmark(task)
    cfg["task"] = f"builtin_{task}"
    # hf_evaluate makes lm-eval look the f1 metric up on the Hub; the score is the same
    # (gold, pred) aggregation either way and does not touch the requests compared here.
    for metric in cfg["metric_list"]:
        metric.pop("hf_evaluate", None)
    return cfg


@pytest.fixture(scope="module")
def lm(zoo: Path) -> HFLM:
    return HFLM(pretrained=str(zoo / "tiny-llama"), batch_size=8, device="cpu", dtype="float32")


def _requests(results: dict, task: str) -> list[tuple]:
    return [
        (s["doc_id"], tuple(tuple(a) for a in s["arguments"]), tuple(r[0][0] for r in s["resps"]))
        for s in results["samples"][task]
    ]


@pytest.mark.parametrize("shots", [0, 2])
def test_kobest_requests_and_loglikelihoods_equal_builtin(lm: HFLM, shots: int) -> None:
    ours = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    theirs = TaskManager(include_defaults=False)
    kwargs = dict(model=lm, num_fewshot=shots, limit=LIMIT, log_samples=True)
    mine = simple_evaluate(tasks=KOBEST, task_manager=ours, **kwargs)
    builtin = simple_evaluate(
        tasks=[builtin_config(t) for t in KOBEST], task_manager=theirs, **kwargs
    )
    for task in KOBEST:
        a, b = _requests(mine, task), _requests(builtin, f"builtin_{task}")
        assert len(a) == LIMIT
        assert a == b, task  # same prompts, same continuations, identical loglikelihoods
        for metric in ("acc,none", "f1,none"):
            assert mine["results"][task][metric] == builtin["results"][f"builtin_{task}"][metric]


def test_prompts_keep_the_builtin_quirks() -> None:
    from tasks.lmeval import utils

    doc = {
        "premise": "전쟁이 시작되었다.",
        "question": "결과 ",
        "alternative_1": "a",
        "alternative_2": "b",
        "label": 1,
    }
    assert utils.copa_doc_to_text(doc) == "전쟁이 시작되었다.  그래서"  # double space, as built in
    assert utils.copa_doc_to_target(doc) == "b"
