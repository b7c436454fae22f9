"""nsmc and korunsmile follow the reference conventions; the catalogue matches the YAML."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from sklearn.metrics import f1_score

from tasks import catalog
from tasks.errors import TaskDataError
from tasks.lmeval.utils import unsmile_class


@pytest.fixture(scope="module")
def lm(zoo: Path) -> HFLM:
    return HFLM(pretrained=str(zoo / "tiny-gpt2"), batch_size=8, device="cpu", dtype="float32")


def test_unsmile_collapse() -> None:
    def onehot(i: int) -> list[int]:
        return [int(j == i) for j in range(10)]

    assert unsmile_class(onehot(8)) == 1  # 악플/욕설
    assert unsmile_class(onehot(9)) == 2  # clean
    assert [unsmile_class(onehot(i)) for i in range(8)] == [0] * 8  # every hate category
    assert unsmile_class([0, 1, 0, 0, 0, 0, 0, 0, 1, 0]) == 0  # first maximum wins
    assert unsmile_class([0] * 10) == 0  # no label at all: argmax is index 0 (reference)


def test_catalogue_lists_every_task_with_version() -> None:
    tasks = catalog.all_tasks()
    assert set(tasks) == {
        "kobest_boolq",
        "kobest_copa",
        "kobest_hellaswag",
        "kobest_sentineg",
        "kobest_wic",
        "nsmc",
        "korunsmile",
        "ko_bpb",
        "ko_bpb_comments",
        "ko_bpb_products",
        "ko_bpb_reviews",
    }
    assert tasks["korunsmile"].metric == "f1" and tasks["korunsmile"].split == "valid"
    assert tasks["nsmc"].fewshot_split == "test"
    # ko_bpb and ko_bpb_products 1.1: less the documents that share text with train.
    bumped = {"ko_bpb", "ko_bpb_products"}
    assert all(t.version == ("1.1" if t.name in bumped else "1.0") for t in tasks.values())
    assert catalog.expand(["ko_fusellm"]) == [
        "kobest_boolq",
        "kobest_hellaswag",
        "korunsmile",
        "nsmc",
    ]
    assert catalog.expand(["kobest", "ko_fusellm"])[-2:] == ["korunsmile", "nsmc"]  # no repeats
    with pytest.raises(TaskDataError, match="Did you mean 'nsmc'"):
        catalog.expand(["nsmcc"])


def test_nsmc_prompt_and_fewshot_exclude_the_evaluated_review(lm: HFLM) -> None:
    out = simple_evaluate(
        model=lm,
        tasks=["nsmc"],
        num_fewshot=4,
        limit=40,
        log_samples=True,
        task_manager=catalog.task_manager(),
    )
    samples = out["samples"]["nsmc"]
    counts = Counter(s["doc"]["document"] for s in samples)
    for s in samples:
        (ctx_neg, cont_neg), (ctx_pos, cont_pos) = s["arguments"]
        assert (cont_neg, cont_pos) == (" (부정)", " (긍정)")
        assert ctx_neg == ctx_pos
        shots = ctx_neg.split("\n\n")
        assert len(shots) == 5 and shots[-1] == s["doc"]["document"]
        if counts[s["doc"]["document"]] == 1 and s["doc"]["document"].strip():
            assert not any(shot.rsplit(" (", 1)[0] == s["doc"]["document"] for shot in shots[:-1])


def test_korunsmile_is_three_way_macro_f1(lm: HFLM) -> None:
    out = simple_evaluate(
        model=lm,
        tasks=["korunsmile"],
        num_fewshot=0,
        limit=60,
        log_samples=True,
        task_manager=catalog.task_manager(),
    )
    samples = out["samples"]["korunsmile"]
    assert [c for _, c in samples[0]["arguments"]] == [" 혐오", " 악플", " 양호"]
    golds = [s["target"] for s in samples]
    preds = [max(range(3), key=lambda i, s=s: s["resps"][i][0][0]) for s in samples]
    assert set(golds) <= {0, 1, 2}
    expected = f1_score(golds, preds, average="macro")
    assert out["results"]["korunsmile"]["f1,none"] == pytest.approx(expected)
