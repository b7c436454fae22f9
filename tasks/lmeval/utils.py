"""Helpers the task YAMLs name with ``!function utils.<name>``.

The kobest prompts reproduce lm-eval's built-in kobest tasks (v1.0) character for character,
including their quirks (a double space before the COPA connector, prompts ending in "답변: "
followed by lm-eval's " " target delimiter); tests/tasks/test_kobest_parity.py proves it.
A prompt change here is a new task version in the YAML.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
from lm_eval.api.samplers import ContextSampler

from tasks.loaders import load_benchmark

# korunsmile: the ten-label vector collapses to three classes by argmax (reference convention).
UNSMILE_ABUSE_INDEX = 8  # 악플/욕설
UNSMILE_CLEAN_INDEX = 9  # clean


def load(benchmark: str, **_metadata) -> datasets.DatasetDict:
    """``custom_dataset`` entry point: lm-eval passes the task metadata and dataset_kwargs."""
    return load_benchmark(benchmark)


def nsmc_doc_to_text(doc: dict) -> str:
    """The review as it is. Through a template ("{{document}}") lm-eval turns an all-digit
    text into an int when the task has choices, and a 5-shot prompt that samples such a
    review (NSMC has them, e.g. "1010101010") stops with "Context is not a string"."""
    return doc["document"]


def unsmile_doc_to_text(doc: dict) -> str:
    """The comment as it is (see nsmc_doc_to_text: an all-digit comment must stay text)."""
    return doc["text"]


def copa_doc_to_text(doc: dict) -> str:
    connector = {"원인": " 왜냐하면", "결과": " 그래서"}[doc["question"].strip()]
    return f"{doc['premise']} {connector}"


def copa_doc_to_target(doc: dict) -> str:
    return doc["alternative_1"] if doc["label"] == 0 else doc["alternative_2"]


def copa_doc_to_choice(doc: dict) -> list[str]:
    return [doc["alternative_1"], doc["alternative_2"]]


def sentineg_doc_to_text(doc: dict) -> str:
    return f"문장: {doc['sentence']} 긍부정:"


def wic_doc_to_text(doc: dict) -> str:
    return f"문장1: {doc['context_1']} 문장2: {doc['context_2']} 두 문장에서 {doc['word']}가 같은 뜻으로 쓰였나?"


def hellaswag_process_docs(docs: datasets.Dataset) -> datasets.Dataset:
    def to_choices(doc: dict) -> dict:
        return {
            "query": f"문장: {doc['context']}",
            "choices": [doc[f"ending_{i}"] for i in range(1, 5)],
            "gold": int(doc["label"]),
        }

    return docs.map(to_choices)


def unsmile_class(labels: list[int]) -> int:
    """0 혐오, 1 악플, 2 양호: argmax over the ten labels (ties: first, as numpy does)."""
    index = int(np.argmax(labels))
    if index == UNSMILE_ABUSE_INDEX:
        return 1
    if index == UNSMILE_CLEAN_INDEX:
        return 2
    return 0


def unsmile_process_docs(docs: datasets.Dataset) -> datasets.Dataset:
    return docs.map(lambda doc: {"text": doc["문장"], "gold": unsmile_class(doc["labels"])})


def macro_f1_score(items: list[tuple[int, int]]) -> float:
    from sklearn.metrics import f1_score

    golds, preds = zip(*items, strict=True)
    return float(f1_score(golds, preds, average="macro"))


class ZeroShotOnly(ContextSampler):
    """The few-shot sampler of ko_bpb, which is scored at 0 shots only: a rolling
    log-likelihood scores the document on its own, so lm-eval would build the examples, drop
    them, and report the 0-shot figure under every shot count. Asking for examples is
    refused instead (``fusebench eval`` refuses before loading the model; this covers
    lm-eval's own CLI)."""

    task = "ko_bpb"

    def sample(self, n: int, *args: Any, **kwargs: Any) -> list[dict]:
        if n == 0:
            return []
        raise ValueError(
            f"{self.task} is scored at 0 shots only (a rolling log-likelihood has no prompt); "
            f"{n} shot(s) were asked for: use num_fewshot 0"
        )


class ZeroShotOnlyComments(ZeroShotOnly):
    """ko_bpb_comments' sampler (the same refusal, naming its task)."""

    task = "ko_bpb_comments"


class ZeroShotOnlyReviews(ZeroShotOnly):
    """ko_bpb_reviews' sampler (the same refusal, naming its task)."""

    task = "ko_bpb_reviews"


class ZeroShotOnlyProducts(ZeroShotOnly):
    """ko_bpb_products' sampler (the same refusal, naming its task)."""

    task = "ko_bpb_products"
