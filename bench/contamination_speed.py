"""Contamination check speed: corpus MB/s of ``tasks.contamination`` against a plain Python
set of n-grams (tests/tasks/naive_contamination.py: every evaluation n-gram a string in a set,
the corpus streamed row by row), on the same data, in one run.

Evaluation side: the demo's six tasks (NSMC's 50,000 test reviews among them). Corpus: every
training-split text of the demo zoo, repeated ``--repeat`` times (each copy a new row, so the
work is the same per copy). Both find the same documents (checked here).

    python bench/contamination_speed.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reports import machine  # noqa: E402
from tasks.contamination.check import DEFAULT_N, _results, batches  # noqa: E402
from tasks.contamination.documents import load_documents  # noqa: E402
from tasks.contamination.index import EvalIndex  # noqa: E402
from tests.tasks import naive_contamination as naive  # noqa: E402

TASKS = ["ko_bpb_comments", "ko_bpb_products", "ko_bpb", "korunsmile", "nsmc", "kobest_sentineg"]


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from fusion import zoo_data

    base = [row for name in zoo_data.SOURCES for row in zoo_data.text_source(name)]
    corpus = base * args.repeat
    megabytes = sum(len(t.encode("utf-8")) for t in corpus) / 1e6
    tasks = load_documents(TASKS)
    texts = [next(iter(d.texts.values())) for t in tasks for d in t.documents if d.texts]
    rows = [(str(i), t) for i, t in enumerate(corpus)]

    lengths = dict(DEFAULT_N)
    started = time.perf_counter()
    indexes = [EvalIndex(tasks, unit, n) for unit, n in lengths.items()]
    fast_index = time.perf_counter() - started
    started = time.perf_counter()
    for rows_batch in batches(rows):
        for built in indexes:
            built.scan(rows_batch)
    fast = time.perf_counter() - started
    result = _results(tasks, indexes)
    started = time.perf_counter()
    plain = naive.index(texts, lengths)
    slow_index = time.perf_counter() - started
    started = time.perf_counter()
    found = naive.scan(plain, corpus, lengths)
    slow = time.perf_counter() - started

    flagged = sum(t.contaminated for t in result)
    print(machine.line(machine.record()))
    print(
        f"evaluation: {len(texts):,} documents of {len(TASKS)} tasks; corpus: {len(corpus):,} "
        f"rows, {megabytes:.1f} MB; n-grams {DEFAULT_N} (both)"
    )
    print(f"documents flagged: fusebench {flagged}, plain set {len(found)}")
    if flagged != len(found):
        raise SystemExit("the two disagree: a bug in one of them")
    print("| method | index seconds | corpus scan seconds | corpus MB/s |")
    print("| --- | --- | --- | --- |")
    print(
        f"| plain Python set of n-grams | {slow_index:.1f} | {slow:.1f} | {megabytes / slow:.1f} |"
    )
    print(
        f"| fusebench (numpy hashes, bitmap filter) | {fast_index:.1f} | {fast:.1f} | "
        f"{megabytes / fast:.1f} |"
    )
    print(f"ratio: {slow / fast:.1f}x the plain set's corpus speed")


if __name__ == "__main__":
    main()
