"""Training text for the trained zoo and the demo's fusion corpus, from training splits only.

Each named text source reads the shared data directory through ``tasks.loaders`` (so the
same rows the lm-eval tasks read) and only ever a **train** split: KoBEST train (BoolQ,
COPA, HellaSwag, SentiNeg, WiC) and UnSmile train. Evaluation splits (KoBEST dev/test,
UnSmile valid, NSMC test) and LogicKor are never read here; ``tests/fusion/test_zoo_data.py``
checks that against the files. Task-formatted rows are written as the lm-eval task prompts
them (prompt, the task's target delimiter, the gold choice), so a model trained on them has
learned that task's format.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable
from functools import cache

from fusion.errors import FusionError

TRAIN = "train"

# The korunsmile / nsmc / kobest choices, as the task YAMLs under tasks/lmeval spell them.
UNSMILE_CHOICES = ("혐오", "악플", "양호")
NSMC_CHOICES = ("(부정)", "(긍정)")
SENTINEG_CHOICES = ("부정", "긍정")
BOOLQ_CHOICES = ("아니오", "예")


def _train_split(benchmark: str) -> list[dict]:
    from tasks.errors import TaskDataError
    from tasks.loaders import load_benchmark

    try:
        return list(load_benchmark(benchmark)[TRAIN])
    except TaskDataError as exc:
        raise FusionError(str(exc)) from exc


def general_text() -> list[str]:
    """General Korean text with no task format: BoolQ passages (Wikipedia), HellaSwag
    contexts, COPA premises and alternatives, WiC and SentiNeg sentences."""
    rows: list[str] = []
    rows += dict.fromkeys(doc["paragraph"] for doc in _train_split("kobest_boolq"))
    rows += [doc["context"] for doc in _train_split("kobest_hellaswag")]
    for doc in _train_split("kobest_copa"):
        rows += [doc["premise"], doc["alternative_1"], doc["alternative_2"]]
    for doc in _train_split("kobest_wic"):
        rows += [doc["context_1"], doc["context_2"]]
    return list(dict.fromkeys(row.strip() for row in rows if row.strip()))


def comment_text() -> list[str]:
    """UnSmile train comments as plain text (no class word): the hate-speech source's domain."""
    return list(dict.fromkeys(doc["문장"].strip() for doc in _train_split("korunsmile")))


def review_text() -> list[str]:
    """SentiNeg train sentences (shopping reviews) as plain text: the sentiment source's
    domain. Kept out of ``general``, so the target never sees a review."""
    return list(dict.fromkeys(doc["sentence"].strip() for doc in _train_split("kobest_sentineg")))


def unsmile_rows() -> list[str]:
    """UnSmile train comments as the ``korunsmile`` task prompts them, gold class after."""
    from tasks.lmeval.utils import unsmile_class

    return [
        f"{doc['문장']} {UNSMILE_CHOICES[unsmile_class(doc['labels'])]}"
        for doc in _train_split("korunsmile")
    ]


def sentiment_rows() -> list[str]:
    """SentiNeg train sentences labelled two ways: as ``nsmc`` prompts (review, then
    ``(긍정)``/``(부정)``) and as ``kobest_sentineg`` prompts."""
    from tasks.lmeval.utils import sentineg_doc_to_text

    rows = []
    for doc in _train_split("kobest_sentineg"):
        rows.append(f"{doc['sentence']} {NSMC_CHOICES[doc['label']]}")
        rows.append(f"{sentineg_doc_to_text(doc)} {SENTINEG_CHOICES[doc['label']]}")
    return rows


def boolq_rows() -> list[str]:
    """BoolQ train as ``kobest_boolq`` prompts it: passage, question, answer."""
    return [
        f"{doc['paragraph']} 질문: {doc['question']} 답변:  {BOOLQ_CHOICES[doc['label']]}"
        for doc in _train_split("kobest_boolq")
    ]


DESCRIPTIONS = {
    "general": "KoBEST train: BoolQ passages, HellaSwag contexts, COPA premises and "
    "alternatives, WiC sentences (no labels, no prompts)",
    "comments": "UnSmile train comments, plain text",
    "reviews": "KoBEST SentiNeg train sentences (shopping reviews), plain text",
    "unsmile": "UnSmile train comments, each followed by its korunsmile class word",
    "sentiment": "KoBEST SentiNeg train sentences as nsmc prompts (+ (긍정)/(부정)) and as "
    "kobest_sentineg prompts (+ 긍정/부정)",
    "boolq": "KoBEST BoolQ train as kobest_boolq prompts with the answer (예/아니오)",
}

SOURCES: dict[str, Callable[[], list[str]]] = {
    "general": general_text,
    "comments": comment_text,
    "reviews": review_text,
    "unsmile": unsmile_rows,
    "sentiment": sentiment_rows,
    "boolq": boolq_rows,
}


# Of every source's documents, this share (by a hash of the document's text, so the same
# comment or sentence falls on the same side in every format) is kept for the fusion corpus
# and never trained on by any zoo model: on the fusion corpus the sources then predict, as
# FuseLLM's sources do on MiniPile, instead of recalling rows they were trained on (a source
# that recalls its rows gives near one-hot distributions: nothing beyond the gold token).
FUSION_SHARE_PERCENT = 15

_SENTINEG_ROW = re.compile(r"문장: (.*) 긍부정: \S+", flags=re.S)
_BOOLQ_ROW = re.compile(r"(.*) 질문: .* 답변:  \S+", flags=re.S)


def document_of(name: str, row: str) -> str:
    """The data document a row of source ``name`` is made from (a task row less its prompt
    and answer), so that the fusion/training split keeps each document on one side."""
    if name in ("unsmile", "sentiment"):
        sentineg = _SENTINEG_ROW.fullmatch(row)
        return (sentineg[1] if sentineg else row.rpartition(" ")[0]).strip()
    if name == "boolq":
        boolq = _BOOLQ_ROW.fullmatch(row)
        return (boolq[1] if boolq else row).strip()
    return row.strip()


def reserved_for_fusion(document: str) -> bool:
    """Whether a document belongs to the fusion corpus's share (no zoo model trains on it)."""
    return zlib.crc32(document.encode("utf-8")) % 100 < FUSION_SHARE_PERCENT


@cache
def training_rows(name: str) -> tuple[str, ...]:
    """Rows of ``name`` that zoo models train on: those whose document is not reserved."""
    return tuple(r for r in text_source(name) if not reserved_for_fusion(document_of(name, r)))


@cache
def fusion_rows(name: str) -> tuple[str, ...]:
    """Rows of ``name`` that the fusion corpus samples: no zoo model trained on them."""
    return tuple(r for r in text_source(name) if reserved_for_fusion(document_of(name, r)))


def weighted(entry: str) -> tuple[str, int]:
    """A recipe's text entry: ``name`` or ``name*K`` (its rows K times in the training
    stream, so a small domain is not drowned by general text)."""
    name, _, times = entry.partition("*")
    if times and not times.isdigit():
        raise FusionError(f"zoo text entry {entry!r}: expected NAME or NAME*K")
    return name, int(times or 1)


@cache
def text_source(name: str) -> tuple[str, ...]:
    """One named source's rows (read once per process)."""
    if name not in SOURCES:
        raise FusionError(f"unknown zoo text source {name!r}; known: {', '.join(SOURCES)}")
    return tuple(SOURCES[name]())


def split_held_out(rows: tuple[str, ...], fraction: float, seed: int) -> tuple[list, list]:
    """(train rows, held-out rows): a seeded, fixed fraction held out for the model's loss."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = max(1, round(len(rows) * fraction))
    held = set(order[:cut])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def mixture(counts: dict[str, int], seed: int) -> list[tuple[str, str]]:
    """A seeded sample of ``counts[name]`` of each source's fusion rows (``fusion_rows``: no
    zoo model trained on them), shuffled together, each as (source name, row): the demo's
    fusion corpus, a small mixed sample of the sources' domains; the name becomes the row's
    ``group``."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for name, count in counts.items():
        pool = list(fusion_rows(name))
        if count > len(pool):
            raise FusionError(f"zoo mixture: {count} rows of {name!r} asked, {len(pool)} exist")
        rows += [(name, row) for row in rng.sample(pool, count)]
    rng.shuffle(rows)
    return rows
