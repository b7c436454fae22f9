"""Korean-language compliance of LogicKor answers, beside the judge's scores.

Per run and strategy: how many answers were checked (``tasks.language``), the share that is
not Korean, and a cross-check with the judge, whose rules give a non-Korean answer 0: how
many non-Korean answers the judge still scored above 0 (missed), and how many Korean answers
it scored 0 (for other reasons, or wrongly for language).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports import logickor
from tasks.language import KOREAN_THRESHOLD, is_korean


@dataclass
class Compliance:
    run: str
    strategy: str
    checked: int  # answers the check applies to
    not_korean: int
    judge_missed: int  # not Korean, yet the judge scored it above 0
    zero_for_korean: int  # Korean, and the judge scored it 0
    scored: int  # checked answers with a judge score

    @property
    def share(self) -> float | None:
        return self.not_korean / self.checked if self.checked else None


def compliance(samples: pd.DataFrame) -> list[Compliance]:
    """One row per (run, strategy) of LogicKor samples."""
    if samples.empty:
        return []
    rows = samples[samples["kind"] == "logickor"].drop_duplicates(["run", "strategy", "doc_id"])
    out = []
    for (run, strategy), group in rows.groupby(["run", "strategy"], sort=False):
        item = Compliance(str(run), str(strategy), 0, 0, 0, 0, 0)
        for record in group["record"]:
            questions, outputs = record.get("questions") or [], record.get("outputs") or []
            for turn, key in enumerate(logickor.TURNS):
                if turn >= len(outputs):
                    continue
                question = questions[turn] if turn < len(questions) else None
                korean = is_korean(outputs[turn], question)
                if korean is None:
                    continue
                item.checked += 1
                item.not_korean += not korean
                score = (record.get(key) or {}).get("judge_score")
                if isinstance(score, (int, float)):
                    item.scored += 1
                    item.judge_missed += (not korean) and score > 0
                    item.zero_for_korean += korean and score == 0
        out.append(item)
    return out


HEADER = [
    "Model",
    "Strategy",
    "Answers checked",
    "Not Korean",
    "Share",
    "Judge missed",
    "0 for Korean",
]
NOTE = (
    f"Not Korean: Hangul under {KOREAN_THRESHOLD:g} of the letters (code left out). Judge "
    "missed: answers not in Korean that the judge scored above 0 (its rules say 0). 0 for "
    "Korean: Korean answers the judge scored 0. Questions that ask for another language, and "
    "answers without letters, are not checked."
)


def rows(items: list[Compliance]) -> list[list[str]]:
    out = []
    for c in items:
        judged = c.scored > 0
        out.append(
            [
                c.run,
                c.strategy,
                str(c.checked),
                str(c.not_korean),
                "—" if c.share is None else f"{100 * c.share:.1f}%",
                str(c.judge_missed) if judged else "—",
                str(c.zero_for_korean) if judged else "—",
            ]
        )
    return out


def to_markdown(items: list[Compliance]) -> str:
    """The compliance table, or an empty string when there are no LogicKor answers."""
    if not items:
        return ""
    lines = ["### Korean-language compliance", "", "| " + " | ".join(HEADER) + " |"]
    lines.append("| " + " | ".join("---" for _ in HEADER) + " |")
    lines += ["| " + " | ".join(r) + " |" for r in rows(items)]
    return "\n".join([*lines, "", NOTE]) + "\n"


def view(items: list[Compliance]) -> dict | None:
    return {"header": HEADER, "rows": rows(items), "note": NOTE} if items else None
