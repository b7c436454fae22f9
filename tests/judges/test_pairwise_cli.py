"""``fusebench judge BASE --pairwise OTHER`` against scripted judges on 127.0.0.1.

The scripted judges (``tests/judges/pairwise_judges.py``) read the two answers of each
prompt, as a real judge would: one always prefers position A, one prefers the longer answer,
one is consistent and follows outcomes planted in the other model's answers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import main
from judges.cache import endpoint_of
from judges.verdict import parse_verdict


def _questions(data_root: Path) -> list[dict]:
    path = data_root / "logickor" / "questions.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _write(root: Path, org_model: str, rows: list[dict]) -> Path:
    path = root / org_model / "default.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _pair(
    root: Path,
    data_root: Path,
    base_answer: Callable[[int, int], str],
    other_answer: Callable[[int, int], str],
) -> tuple[Path, Path]:
    """A base and an other model's file over LogicKor's real questions."""
    base, other = [], []
    for i, q in enumerate(_questions(data_root)):
        common = {"id": q["id"], "category": q["category"], "questions": q["questions"]}
        common["references"] = q["references"]
        base.append({**common, "outputs": [base_answer(i, t) for t in (0, 1)]})
        other.append({**common, "outputs": [other_answer(i, t) for t in (0, 1)]})
    return _write(root, "org/base", base), _write(root, "org/fused", other)


def _judgments(out: Path) -> list[dict]:
    files = sorted((out / "pairwise").rglob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text("utf-8").splitlines()]


def _tables(out: Path):
    from reports import pairwise

    return pairwise.tables(pairwise.load([out]), resamples=2000, fit_resamples=300)


def _overall(out: Path):
    (table,) = _tables(out)
    return table, next(r for r in table.rows if r.category == "overall")


def test_a_judge_that_always_prefers_position_a_is_never_consistent(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    base, other = _pair(tmp_path, data_root, lambda i, t: f"기본 답변 {i}", lambda i, t: f"답 {i}")
    with scripted_judge(respond=pairwise_judges.prefers_a) as server:
        code, printed = pairwise_judges.run(
            base, other, tmp_path / "out", server, tmp_path / "c.sqlite"
        )
        assert server.requests == 42 * 2 * 2  # every question, both turns, both orders
    assert code == 0
    table, overall = _overall(tmp_path / "out")
    assert table.consistency == 0.0
    assert (overall.wins, overall.ties, overall.losses) == (0, 84, 0)
    assert overall.rate == 0.5 and overall.consistency == 0.0
    assert "Position consistency of the judge: 0.0%" in printed
    assert "84 position-inconsistent" in printed
    one = _judgments(tmp_path / "out")[0]
    assert [o["verdict"] for o in one["orders"]] == ["A>B", "A>B"]
    assert [o["other_score"] for o in one["orders"]] == [-1, 1]


def test_a_judge_that_prefers_length_is_seen_through_by_the_length_control(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    """The fused model says what the base says, padded on two questions of three: the raw
    win rate favours it, the length-controlled one reads about even."""
    rng = random.Random(3)
    sizes = {i: rng.randint(40, 400) for i in range(42)}

    def base_answer(i: int, t: int) -> str:
        return "핵심 답변입니다. " * (sizes[i] // 10 + 1)

    def verbose(i: int, t: int) -> str:
        padding = "" if i % 3 == 0 else " 덧붙이는 말입니다." * (2 + (i * 7 + t) % 9)
        return base_answer(i, t) + padding

    base, other = _pair(tmp_path, data_root, base_answer, verbose)
    with scripted_judge(respond=pairwise_judges.prefers_longer) as server:
        assert (
            pairwise_judges.run(base, other, tmp_path / "out", server, tmp_path / "c.sqlite")[0]
            == 0
        )
    table, overall = _overall(tmp_path / "out")
    (length,) = table.lengths
    assert length.mean_len_other > length.mean_len_base
    assert overall.rate > 0.75  # the judge rewarded length
    assert 0.4 < length.lc_rate < 0.6  # at equal length, no better
    assert length.slope > 1  # the length effect is in the slope
    assert length.lc_interval.high < overall.interval.low  # clearly apart from the raw rate


PLANTED_RATE = 0.7  # P(win) 0.55 (half of them strong), P(tie) 0.3, P(loss) 0.15


def _planted_outcomes(seed: int = 11) -> dict[tuple[int, int], str]:
    rng = random.Random(seed)
    out = {}
    for i in range(42):
        for t in (0, 1):
            x = rng.random()
            out[(i, t)] = (
                ("bigwin" if rng.random() < 0.5 else "win")
                if x < 0.55
                else "tie"
                if x < 0.85
                else ("loss" if rng.random() < 0.5 else "bigloss")
            )
    return out


def test_a_consistent_judge_reproduces_a_planted_win_rate_and_a_rerun_is_free(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    outcomes = _planted_outcomes()
    outcomes[(5, 0)] = "none"  # this judgment's replies never hold a verdict
    base, other = _pair(
        tmp_path,
        data_root,
        lambda i, t: f"기본 답변 {i}-{t}",
        lambda i, t: f"다른 답변 {'SM'[t]}:{outcomes[(i, t)]}",
    )
    cache = tmp_path / "c.sqlite"
    with scripted_judge(respond=pairwise_judges.planted) as server:
        code, printed = pairwise_judges.run(base, other, tmp_path / "out", server, cache)
        first = server.requests
        assert code == 0
        rerun, _ = pairwise_judges.run(base, other, tmp_path / "out2", server, cache)
        assert rerun == 0 and server.requests == first  # every reply from the cache
    assert first == 42 * 2 * 2 + 2 * 2  # the verdict-less judgment asked 3 times per order
    table, overall = _overall(tmp_path / "out")
    assert table.consistency == 1.0
    assert overall.unparsable == 1 and overall.errors == 0
    assert overall.wins + overall.ties + overall.losses == 83  # never defaulted to a verdict
    assert overall.interval.low < PLANTED_RATE < overall.interval.high
    assert overall.interval.high - overall.interval.low < 0.25
    unparsable = next(j for j in _judgments(tmp_path / "out") if j["status"] != "ok")
    assert unparsable["status"] == "unparsable" and unparsable["outcome"] is None
    assert [o["asks"] for o in unparsable["orders"]] == [3, 3]
    assert "1 unparsable, 0 error" in printed
    rerun_outcomes = [j["outcome"] for j in _judgments(tmp_path / "out2")]
    assert rerun_outcomes == [j["outcome"] for j in _judgments(tmp_path / "out")]


def test_a_failing_endpoint_is_an_error_never_a_verdict(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    base, other = _pair(tmp_path, data_root, lambda i, t: "가", lambda i, t: "나")
    with scripted_judge(respond=lambda messages: "HTTP 500") as server:
        code, printed = pairwise_judges.run(
            base,
            other,
            tmp_path / "out",
            server,
            tmp_path / "c.sqlite",
            "--max-retries",
            "1",
            "--limit",
            "2",
        )
    assert code == 0
    judgments = _judgments(tmp_path / "out")
    assert len(judgments) == 4  # --limit 2 questions, two turns
    assert {j["status"] for j in judgments} == {"error"}
    assert all(j["outcome"] is None for j in judgments)
    assert "0 ok, 0 unparsable, 4 error" in printed


def test_pairwise_user_errors_are_one_line(tmp_path: Path, data_root: Path, capsys) -> None:
    base, other = _pair(tmp_path, data_root, lambda i, t: "가", lambda i, t: "나")
    local = ["--base-url", "http://127.0.0.1:9/v1", "--quiet"]
    assert main(["judge", str(base), "--pairwise", str(other), *local]) == 2
    assert "--output" in capsys.readouterr().err
    out = ["--output", str(tmp_path / "o")]
    assert main(["judge", str(base), "--pairwise", str(other), *out, "--repeats", "2", *local]) == 2
    assert "--repeats and --template apply to single scores" in capsys.readouterr().err
    other.write_text(other.read_text("utf-8").replace('"questions": ["', '"questions": ["X'))
    code = main(
        ["judge", str(base), "--pairwise", str(other), "--output", str(tmp_path / "o"), *local]
    )
    err = capsys.readouterr().err
    assert code == 2 and "asks something else" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("평가: 좋다.\n판정: [[A>>B]]", 2),
        ("**판정:** [[B>A]]", -1),
        ("판정 : A = B", 0),
        ("### 판정：[[B<<A]]", 2),
        ("판정: [[A<B]]", -1),
        ("평가: 답변에 '판정: [[A>>B]]'이라고 적혀 있다.\n판정: [[B>>A]]", -2),
        ("평가: 좋다.", None),
        ("판정: [[A>>B]]\n판정: [[B>A]]", None),  # two verdicts that disagree
        # Full-width forms read as ASCII: brackets, signs, letters, colon, blanks, marks.
        ("판정: ［［A>B］］", 1),
        ("판정：［［Ａ＞＞Ｂ］］", 2),
        ("판정: ［［A＜B］］", -1),
        ("판정: ［［B＜＜A］］", 2),
        ("판정: ［［A＝B］］", 0),
        ("판정　：　［［B＞A］］", -1),  # ideographic spaces
        ("＊＊판정：＊＊ ［［B＞＞A］］", -2),
        ("＃＃ 판정: [[A>B］］", 1),
        ("판정: [[B==A]]", 0),
        ("평가: 답변이 '판정：［［A＞＞B］］'라고 적었다.\n판정: ［［B＞A］］", -1),  # a quote
        ("판정: ［［A>B］］\n판정: [[B>A]]", None),  # full-width or not, two verdicts
        ("판정: ［［A≫B］］", None),  # not a full-width form: not read
        ("판정: 【A>B】", None),
        ("［［A>B］］", None),  # no 판정 line
        ("판정: [[C>A]]", None),
        ("판정: 없음", None),
        ("", None),
    ],
)
def test_verdict_parsing(reply: str, value: int | None) -> None:
    assert parse_verdict(reply) == value


def test_a_full_width_verdict_from_the_judge_server_is_read_the_first_time(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    """A judge writing ``판정：［［Ａ＞＞Ｂ］］`` (full-width brackets, signs, letters and colon):
    each reply is read as its ASCII form, once, never asked again or lost."""
    base, other = _pair(tmp_path, data_root, lambda i, t: "BASE", lambda i, t: "OTHER")

    def full_width(messages: list[dict]) -> str:
        _, a, _ = pairwise_judges.answers(messages)
        return (
            "평가: 비교했다.\n판정：［［Ａ＞＞Ｂ］］"
            if "OTHER" in a
            else "**판정：** ［［B＞＞A］］"
        )

    with scripted_judge(respond=full_width) as server:
        code, _ = pairwise_judges.run(
            base, other, tmp_path / "out", server, tmp_path / "c.sqlite", "--limit", "1"
        )
        assert code == 0 and server.requests == 2 * 2  # each order asked once
    judgments = _judgments(tmp_path / "out")
    assert [(j["status"], j["outcome"], j["score"]) for j in judgments] == [("ok", "win", 2.0)] * 2
    assert {o["verdict"] for j in judgments for o in j["orders"]} == {"A>>B", "B>>A"}
    assert {o["asks"] for j in judgments for o in j["orders"]} == {1}


def test_an_interrupted_pairwise_run_resumes_from_its_part_file(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    """Judgments already appended to the part file (a killed run) are not asked again, even
    without a cache; a torn last line is dropped and redone."""
    base, other = _pair(tmp_path, data_root, lambda i, t: f"가 {i}", lambda i, t: f"나나 {i}")
    out = tmp_path / "out"
    args = ("--no-cache", "--limit", "3")
    with scripted_judge(respond=pairwise_judges.prefers_longer) as server:
        assert pairwise_judges.run(base, other, out, server, tmp_path / "c.sqlite", *args)[0] == 0
        full = _judgments(out)
        (final,) = (out / "pairwise").rglob("*.jsonl")
        part = final.parent / f".{final.name}.pairwise-part"
        signature = {
            "kind": "pairwise",
            "endpoint": endpoint_of(server.base_url),
            "model": "scripted-pairwise",
            "max_asks": 3,
            "sampling": {"temperature": 0.0},
        }
        kept = [json.dumps({**j, "_judge": signature}, ensure_ascii=False) for j in full[:4]]
        part.write_text("\n".join(kept) + "\n" + kept[0][:50], "utf-8")
        final.unlink()
        before = server.requests
        assert pairwise_judges.run(base, other, out, server, tmp_path / "c.sqlite", *args)[0] == 0
        assert server.requests - before == 2 * 2  # the two unfinished judgments, both orders
    assert _judgments(out) == full and not part.exists()
