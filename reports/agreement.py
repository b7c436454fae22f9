"""Agreement between judge models that judged the same answers.

Single scores: the same LogicKor answers judged by two judges (``fusebench judge`` twice,
``--judge-model`` differing, into two folders) are paired by strategy, question and turn
within the same set of answers (a file's answers, whichever folder holds them); per pair of judges, the
Spearman and Kendall correlations of their scores, each judge's mean and the mean of the
judges. Pairwise verdicts: the same pairs judged by two judges are paired by strategy,
models, question and turn; per pair of judges, Cohen's kappa of their outcomes (win, tie,
loss) and each judge's win rate.

A judged file records its judge per judgment (``judge_model``); LogicKor's published files
do not, and are named by their run instead.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass

import pandas as pd

from reports import logickor
from reports import pairwise_stats as ps


@dataclass
class ScoreAgreement:
    strategy: str
    judge_a: str
    judge_b: str
    answers: int
    spearman: float
    kendall: float
    mean_a: float
    mean_b: float

    @property
    def mean_of_judges(self) -> float:
        return (self.mean_a + self.mean_b) / 2


@dataclass
class VerdictAgreement:
    strategy: str
    judge_a: str
    judge_b: str
    judgments: int
    kappa: float
    win_rate_a: float
    win_rate_b: float


def _answers_key(records: list[dict]) -> str:
    """What identifies one set of answers (a generated file), whichever folder and judge."""
    answers = sorted((str(r.get("id")), r.get("outputs") or []) for r in records)
    payload = json.dumps(answers, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def score_items(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per judged answer: strategy, item (set of answers, question, turn), judge,
    score. Items of different models' answers never meet, even when two answers agree."""
    items = []
    if samples.empty:
        return pd.DataFrame(columns=["strategy", "item", "judge", "score"])
    rows = samples[samples["kind"] == "logickor"].drop_duplicates(["run", "strategy", "doc_id"])
    for (run, strategy), group in rows.groupby(["run", "strategy"], sort=False):
        records = list(group["record"])
        answers = _answers_key(records)
        for record in records:
            outputs = record.get("outputs") or []
            for turn, key in enumerate(logickor.TURNS):
                judged = record.get(key) or {}
                score = judged.get("judge_score")
                if not isinstance(score, (int, float)) or turn >= len(outputs):
                    continue
                judge = judged.get("judge_model") or f"judge of {run}"
                item = f"{answers}|{record.get('id')}|{turn}"
                items.append((str(strategy), item, str(judge), float(score)))
    return pd.DataFrame(items, columns=["strategy", "item", "judge", "score"])


def scores(samples: pd.DataFrame) -> list[ScoreAgreement]:
    """Every pair of judges that scored answers in common, per strategy."""
    items = score_items(samples)
    out = []
    for strategy, group in items.groupby("strategy", sort=False):
        table = group.pivot_table(index="item", columns="judge", values="score", aggfunc="mean")
        for a, b in itertools.combinations(sorted(table.columns), 2):
            both = table[[a, b]].dropna()
            if len(both) < 2:
                continue
            corr = ps.score_agreement(both[a].to_numpy(), both[b].to_numpy())
            out.append(
                ScoreAgreement(
                    str(strategy),
                    a,
                    b,
                    len(both),
                    corr.spearman,
                    corr.kendall,
                    float(both[a].mean()),
                    float(both[b].mean()),
                )
            )
    return out


def verdicts(frame: pd.DataFrame) -> list[VerdictAgreement]:
    """Every pair of judges with pairwise outcomes in common (``reports.pairwise.load``)."""
    ok = frame[frame["status"] == "ok"]
    out = []
    for strategy, group in ok.groupby("strategy", sort=False):
        table = group.pivot_table(
            index=["base", "other", "id", "turn"],
            columns="judge_model",
            values="outcome",
            aggfunc="first",
        )
        for a, b in itertools.combinations(sorted(table.columns), 2):
            both = table[[a, b]].dropna()
            if len(both) < 2:
                continue
            rate = {j: float(both[j].map(ps.OUTCOME_VALUE).mean()) for j in (a, b)}
            out.append(
                VerdictAgreement(
                    str(strategy),
                    a,
                    b,
                    len(both),
                    ps.verdict_kappa(both[a].tolist(), both[b].tolist()),
                    rate[a],
                    rate[b],
                )
            )
    return out


def _num(value: float, places: int = 3) -> str:
    return "—" if not math.isfinite(value) else f"{value:.{places}f}"


NOTE = (
    "Scores: rank correlations over the answers both judges scored (1: the same order). "
    "Verdicts: Cohen's kappa of win / tie / loss over the judgments both answered (1: always "
    "agree, 0: as often as chance)."
)


def views(score_rows: list[ScoreAgreement], verdict_rows: list[VerdictAgreement]) -> list[dict]:
    """The agreement tables as (title, header, rows) of text; empty when no two judges meet."""
    out = []
    if score_rows:
        out.append(
            {
                "title": "Agreement between judges (scores)",
                "header": ["Strategy", "Judge A", "Judge B", "Answers", "Spearman", "Kendall",
                           "Mean A", "Mean B", "Mean of judges"],
                "rows": [
                    [r.strategy, r.judge_a, r.judge_b, str(r.answers), _num(r.spearman),
                     _num(r.kendall), f"{r.mean_a:.2f}", f"{r.mean_b:.2f}",
                     f"{r.mean_of_judges:.2f}"]
                    for r in score_rows
                ],
            }
        )  # fmt: skip
    if verdict_rows:
        out.append(
            {
                "title": "Agreement between judges (pairwise verdicts)",
                "header": ["Strategy", "Judge A", "Judge B", "Judgments", "Cohen's kappa",
                           "Win rate A", "Win rate B"],
                "rows": [
                    [r.strategy, r.judge_a, r.judge_b, str(r.judgments), _num(r.kappa),
                     f"{100 * r.win_rate_a:.1f}%", f"{100 * r.win_rate_b:.1f}%"]
                    for r in verdict_rows
                ],
            }
        )  # fmt: skip
    return out


def to_markdown(score_rows: list[ScoreAgreement], verdict_rows: list[VerdictAgreement]) -> str:
    """The agreement tables, or an empty string when no two judges share anything."""
    out: list[str] = []
    for table in views(score_rows, verdict_rows):
        out += [f"### {table['title']}", "", "| " + " | ".join(table["header"]) + " |"]
        out.append("| " + " | ".join("---" for _ in table["header"]) + " |")
        out += ["| " + " | ".join(row) + " |" for row in table["rows"]]
        out.append("")
    return "\n".join([*out, NOTE]) + "\n" if out else ""
