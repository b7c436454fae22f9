"""The LogicKor leaderboard on LogicKor's published judged files, checked against a table
computed here independently, in plain Python, the way LogicKor's own score.py does it."""

from __future__ import annotations

import json
import math
import shutil
from fractions import Fraction
from pathlib import Path

import pytest

from reports import leaderboard, render
from reports.errors import ReportError
from reports.load import load

CATEGORIES = [
    "추론(Reasoning)",
    "수학(Math)",
    "글쓰기(Writing)",
    "코딩(Coding)",
    "이해(Understanding)",
    "문법(Grammar)",
]
KEYS = [*CATEGORIES, "single_turn", "multi_turn", "overall"]
HEADER = (
    "| Model | Strategy | 추론 | 수학 | 글쓰기 | 코딩 | 이해 | 문법 | 싱글턴 | 멀티턴 | Overall |"
)


def independent_table(root: Path) -> dict[tuple[str, str], dict[str, tuple[str, str]]]:
    """(org/model, strategy) -> column -> (rounded, truncated), two decimals.

    Rounded as score.py prints (f"{mean:.2f}" on float means); truncated on exact fractions
    (floor of 100 x value), as the website shows."""
    table = {}
    for path in sorted(root.glob("*/*/*.jsonl")):
        rows = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8-sig").splitlines()
            if line.strip()
        ]
        singles: dict[str, list[float]] = {}
        multis: dict[str, list[float]] = {}
        for row in rows:
            singles.setdefault(row["category"], []).append(row["query_single"]["judge_score"])
            multis.setdefault(row["category"], []).append(row["query_multi"]["judge_score"])
        floats, exact = {}, {}
        for cat in singles:
            s, m = singles[cat], multis[cat]
            floats[cat] = (sum(s) / len(s) + sum(m) / len(m)) / 2
            exact[cat] = (
                Fraction(sum(map(Fraction, s)), len(s)) + Fraction(sum(map(Fraction, m)), len(m))
            ) / 2
        all_s = [x for v in singles.values() for x in v]
        all_m = [x for v in multis.values() for x in v]
        floats["single_turn"], floats["multi_turn"] = (
            sum(all_s) / len(all_s),
            sum(all_m) / len(all_m),
        )
        floats["overall"] = (floats["single_turn"] + floats["multi_turn"]) / 2
        exact["single_turn"] = Fraction(sum(map(Fraction, all_s)), len(all_s))
        exact["multi_turn"] = Fraction(sum(map(Fraction, all_m)), len(all_m))
        exact["overall"] = (exact["single_turn"] + exact["multi_turn"]) / 2
        model = f"{path.parent.parent.name}/{path.parent.name}"
        table[(model, path.stem)] = {
            k: (f"{floats[k]:.2f}", f"{math.floor(exact[k] * 100) / 100:.2f}") for k in KEYS
        }
    return table


def _md_rows(text: str) -> dict[tuple[str, str], list[str]]:
    lines = text.split("## LogicKor", 1)[1].strip().splitlines()
    assert lines[0] == HEADER
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[(cells[0], cells[1])] = cells[2:]
    return rows


@pytest.mark.parametrize("rounding", ["round", "truncate"])
def test_every_published_model_cell_by_cell(logickor_dir: Path, rounding: str) -> None:
    expected = independent_table(logickor_dir)
    assert len(expected) == 14 * 3
    loaded = load([logickor_dir])
    boards = leaderboard.build(loaded.scores, rounding)
    which = 0 if rounding == "round" else 1
    # JSON: keys named exactly as LogicKor's, values rounded as asked.
    rows = json.loads(render.boards_json(boards))["rows"]
    assert len(rows) == len(expected)
    for row in rows:
        assert list(row["scores"]) == KEYS
        want = expected[(row["model"], row["strategy"])]
        for key in KEYS:
            assert f"{row['scores'][key]:.2f}" == want[key][which], (row["model"], key)
    # Markdown: the same numbers under LogicKor's own headers, sorted by Overall.
    md = _md_rows(render.boards_md(boards, rounding))
    assert set(md) == set(expected)
    for key, cells in md.items():
        assert cells == [expected[key][k][which] for k in KEYS], key
    overall = [float(cells[-1]) for cells in md.values()]
    assert overall == sorted(overall, reverse=True)
    # CSV: the same again.
    csv_lines = render.boards_csv(boards).splitlines()
    assert csv_lines[0] == "model,num_fewshot,strategy," + ",".join(KEYS)
    for line in csv_lines[1:]:
        model, _, strategy, *cells = line.split(",")
        assert cells == [expected[(model, strategy)][k][which] for k in KEYS]


def test_round_and_truncate_differ_somewhere(logickor_dir: Path) -> None:
    """The two modes are not the same table (else the comparison above proves little)."""
    table = independent_table(logickor_dir)
    assert any(r != t for cells in table.values() for r, t in cells.values())
    boards = {
        m: render.boards_md(leaderboard.build(load([logickor_dir]).scores, m), m)
        for m in ("round", "truncate")
    }
    assert boards["round"] != boards["truncate"]


def test_files_with_and_without_bom_load_the_same(logickor_dir: Path, tmp_path: Path) -> None:
    source = logickor_dir / "openai" / "gpt-4-1106-preview" / "default.jsonl"
    raw = source.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # as published
    target = tmp_path / "openai" / "gpt-4-1106-preview" / "default.jsonl"
    target.parent.mkdir(parents=True)
    target.write_bytes(raw[3:])
    with_bom = load([source]).scores.drop(columns=["run"])
    without = load([target]).scores.drop(columns=["run"])
    assert with_bom.equals(without)
    assert load([target]).runs[0].model == "openai/gpt-4-1106-preview"


def _unscored(line: str) -> str:
    row = json.loads(line)
    # A null score is only allowed for the statuses that say why (unparsable, error).
    row["query_single"].update(judge_score=None, status="ok")
    return json.dumps(row, ensure_ascii=False)


def _judged_copy(logickor_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "evaluated"
    shutil.copytree(logickor_dir / "nlpai-lab", root / "nlpai-lab")
    shutil.copytree(logickor_dir / "google", root / "google")
    return root


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda rows: rows[:2] + ["{not json"] + rows[3:], "line 3: not JSON"),
        (
            lambda rows: [_unscored(rows[0])] + rows[1:],
            "line 1: query_single.judge_score is None, not a number, status 'ok'",
        ),
        (
            lambda rows: (
                [json.dumps({"id": 1, "category": "x", "questions": ["q"], "outputs": ["a"]})]
                + rows[1:]
            ),
            "line 1: not judged",
        ),
        (lambda rows: rows + [rows[0]], "appears twice"),
        (lambda rows: [], "empty"),
    ],
)
def test_bad_file_is_one_line_and_skip_bad_loads_the_rest(
    logickor_dir: Path, tmp_path: Path, corrupt, message: str
) -> None:
    root = _judged_copy(logickor_dir, tmp_path)
    bad = root / "google" / "gemma-7b-it" / "1-shot.jsonl"
    rows = bad.read_text(encoding="utf-8-sig").splitlines()
    bad.write_text("\n".join(corrupt(rows)) + "\n", encoding="utf-8")
    with pytest.raises(ReportError) as err:
        load([root])
    assert str(err.value).startswith(f"{bad}: ") and message in str(err.value)
    assert "\n" not in str(err.value)
    loaded = load([root], skip_bad=True)
    assert len(loaded.skipped) == 1 and loaded.skipped[0].startswith(str(bad))
    settings = {(r.model, s) for r in loaded.runs for s in r.settings["logickor"]}
    assert ("google/gemma-7b-it", "1-shot") not in settings
    assert len(settings) == 5  # the other five files


def test_generated_but_unjudged_files_are_refused(data_root: Path) -> None:
    generated = data_root / "logickor" / "generated" / "OrionStarAI" / "Orion-14B-Chat"
    with pytest.raises(ReportError, match="not judged"):
        load([generated])


def test_truncation_uses_the_scores_as_written(tmp_path: Path) -> None:
    """Judge scores 0.2 and 0.7 average to 0.45 exactly (floats say 0.44999999999999996)."""
    path = tmp_path / "org" / "model" / "default.jsonl"
    path.parent.mkdir(parents=True)
    rows = [
        {
            "id": i,
            "category": "추론(Reasoning)",
            "questions": ["q1", "q2"],
            "outputs": ["a1", "a2"],
            "references": [None, None],
            "query_single": {"judge_message": "", "judge_score": score},
            "query_multi": {"judge_message": "", "judge_score": score},
        }
        for i, score in enumerate([0.2, 0.7])
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (row,) = json.loads(render.boards_json(leaderboard.build(load([path]).scores, "truncate")))[
        "rows"
    ]
    assert row["scores"]["추론(Reasoning)"] == 0.45 and row["scores"]["overall"] == 0.45
    assert "수학(Math)" not in row["scores"]  # categories with no question are not invented


def test_unscored_judgments_are_left_out_and_counted(logickor_dir: Path, tmp_path: Path) -> None:
    """fusebench's unparsable / error judgments (score null) never count as 0: the means are
    those of the other judgments, computed here independently, and the board counts them."""
    source = logickor_dir / "nlpai-lab" / "KULLM3" / "default.jsonl"
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8-sig").splitlines()]
    rows[0]["query_single"].update(judge_score=None, status="unparsable")
    rows[1]["query_multi"].update(judge_score=None, status="error")
    rows[2]["query_multi"].update(judge_score=None, status="unparsable")
    path = tmp_path / "org" / "model" / "default.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")

    single = [r["query_single"]["judge_score"] for r in rows[1:]]
    multi = [
        r["query_multi"]["judge_score"]
        for r in rows
        if r["id"] not in (rows[1]["id"], rows[2]["id"])
    ]
    expected_overall = (
        Fraction(sum(map(Fraction, single)), len(single))
        + Fraction(sum(map(Fraction, multi)), len(multi))
    ) / 2
    board = leaderboard.build(load([path]).scores, "round")[0]
    (row,) = board.rows
    assert row.key == expected_overall
    assert row.excluded == {"unparsable": 2, "error": 1}
    assert "2 unparsable, 1 error" in render.boards_md([board], "round")
    (as_json,) = json.loads(render.boards_json([board]))["rows"]
    assert as_json["excluded"] == {"unparsable": 2, "error": 1}
    assert set(as_json["scores"]) == {*CATEGORIES, "single_turn", "multi_turn", "overall"}
