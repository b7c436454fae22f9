"""How long a character n-gram should be for Korean: measured on KoBEST with planted leaks.

For each candidate length (and the 13-word n-gram for comparison), against KoBEST's five
scored splits:
- false alarms: documents flagged in independent Korean text that shares no source with
  KoBEST (NSMC movie reviews and UnSmile comments, 65,000 rows): a phrase in common, not a leak;
- train overlap: documents sharing text with KoBEST's own train splits (the zoo's training
  text): BoolQ passages, HellaSwag contexts and WiC example sentences recur across splits;
- whole leaks found: 10 test items per task written into a corpus as rows, as they are;
- paraphrased leaks found: the same items with one word in ten (light) or in four (heavy)
  replaced;
- checkable: the share of scored documents with a text at least that long (the rest are
  found only as a whole row).

    python bench/contamination_length.py [--lengths 15,20,25,30,40,50] [--seed 0]

The default (tasks/contamination/check.py, DEFAULT_N) is the shortest length with no false
alarm; docs/contamination.md records the table this printed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reports import machine  # noqa: E402
from tasks.contamination.check import Settings, check  # noqa: E402
from tasks.contamination.documents import JOINED, load_documents  # noqa: E402

ITEMS_PER_TASK = 10
KOBEST = ["kobest_boolq", "kobest_copa", "kobest_hellaswag", "kobest_sentineg", "kobest_wic"]
FILLERS = ["그리고", "정말", "아마도", "새로운", "하지만", "매우"]


def independent_rows() -> list[tuple[str, str]]:
    """NSMC test reviews and UnSmile train comments: Korean text with no KoBEST source."""
    from tasks.loaders import load_benchmark

    rows = [(f"nsmc:{i + 2}", d["document"]) for i, d in enumerate(load_benchmark("nsmc")["test"])]
    unsmile = load_benchmark("korunsmile")["train"]
    return rows + [(f"unsmile:{i + 2}", d["문장"]) for i, d in enumerate(unsmile)]


def train_rows() -> list[tuple[str, str]]:
    """Every training-split text of the demo zoo (KoBEST and UnSmile train splits)."""
    from fusion import zoo_data

    return [
        (f"{name}:{i + 1}", text)
        for name in zoo_data.SOURCES
        for i, text in enumerate(zoo_data.text_source(name))
    ]


def paraphrase(text: str, every: int, rng: random.Random) -> str:
    """One word in ``every`` replaced by a filler word (a partial paraphrase)."""
    words = text.split()
    for i in range(rng.randrange(every), len(words), every):
        words[i] = rng.choice(FILLERS)
    return " ".join(words)


def planted(tasks, rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """Rows named ``KIND-TASK-INDEX``: whole items, lightly and heavily paraphrased."""
    out: dict[str, list[tuple[str, str]]] = {"whole": [], "light": [], "heavy": []}
    for task in tasks:
        for doc in rng.sample(task.documents, ITEMS_PER_TASK):
            text = (doc.texts.get(JOINED) or next(iter(doc.texts.values()))).replace("\n", " ")
            out["whole"].append((f"whole-{task.task}-{doc.index}", text))
            out["light"].append((f"light-{task.task}-{doc.index}", paraphrase(text, 10, rng)))
            out["heavy"].append((f"heavy-{task.task}-{doc.index}", paraphrase(text, 4, rng)))
    return out


def found(result, kind: str) -> int:
    """Planted items of ``kind`` found by their own row."""
    return len(
        {
            (t.task, f.index)
            for t in result.tasks
            for f in t.findings
            if f"{kind}-{t.task}-{f.index}" in f.corpus
        }
    )


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="15,20,25,30,40,50")
    parser.add_argument(
        "--seed", type=int, default=0, help="Which items are planted, how reworded."
    )
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    tasks = load_documents(KOBEST)
    documents = sum(len(t.documents) for t in tasks)
    leaks = planted(tasks, random.Random(args.seed))
    independent, train = independent_rows(), train_rows()
    print(
        f"KoBEST scored documents: {documents}; independent rows: {len(independent)}; "
        f"train rows: {len(train)}; planted per kind: {len(leaks['whole'])}"
    )
    print(machine.line(machine.record()))
    print(
        "| n-gram | false alarms (independent text) | train overlap | whole found | "
        "light paraphrase found | heavy paraphrase found | checkable | seconds |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for unit, n in [("chars", n) for n in lengths] + [("words", 13)]:
        started = time.perf_counter()
        settings = Settings({unit: n})
        alarms = check(tasks, independent, settings)
        overlap = check(tasks, train, settings)
        leak = check(tasks, [row for rows in leaks.values() for row in rows], settings)
        checkable = sum(t.checkable for t in leak.tasks) / documents
        seconds = time.perf_counter() - started
        total = len(leaks["whole"])
        print(
            f"| {n} {unit} | {sum(t.contaminated for t in alarms.tasks)} | "
            f"{sum(t.contaminated for t in overlap.tasks)} | {found(leak, 'whole')}/{total} | "
            f"{found(leak, 'light')}/{total} | {found(leak, 'heavy')}/{total} | "
            f"{checkable:.1%} | {seconds:.1f} |"
        )
        for t in alarms.tasks:
            for f in t.findings[:3]:
                print(
                    f"    alarm {t.task}[{f.index}] {f.match}: {f.overlap[:50]!r} <- {f.corpus[0]}"
                )


if __name__ == "__main__":
    main()
