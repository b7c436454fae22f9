"""``fusebench judge`` against a scripted OpenAI-compatible server on 127.0.0.1.

Every reply format, 429 with Retry-After, 500s, a hang past the client timeout, a dropped
connection, malformed JSON and replies without a score; statuses, retries, the cache (a second
run makes zero requests), the concurrency bound, resume, and no API key in any written file.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main

SECRET = "sk-test-DO-NOT-LEAK-4f2a9c"
KEY_ENV = "FUSEBENCH_TEST_JUDGE_KEY"


def _write_target(root: Path, data_root: Path, behaviours: list[tuple[str, str]]) -> Path:
    """LogicKor's real questions with answers carrying the behaviour markers."""
    questions = [
        json.loads(line)
        for line in (data_root / "logickor" / "questions.jsonl").read_text("utf-8").splitlines()
    ]
    path = root / "org" / "model" / "default.jsonl"
    path.parent.mkdir(parents=True)
    rows = []
    for q, (single, multi) in zip(questions, behaviours, strict=False):
        rows.append(
            {
                "id": q["id"],
                "category": q["category"],
                "questions": q["questions"],
                "outputs": [f"첫 답변 S:{single}", f"둘째 답변 M:{multi}"],
                "references": q["references"],
            }
        )
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return root


def _judge(
    target: Path, out: Path, server: Any, cache: Path, *extra: str, timeout: float = 30
) -> int:
    """``fusebench judge`` on ``target`` (a timeout generous enough for a loaded machine
    unless a test times out a hang on purpose)."""
    return main(
        [
            "judge",
            str(target),
            "--output",
            str(out),
            "--base-url",
            server.base_url,
            "--judge-model",
            "scripted-judge",
            "--api-key-env",
            KEY_ENV,
            "--cache",
            str(cache),
            "--backoff",
            "0.05",
            "--timeout",
            str(timeout),
            "--quiet",
            *extra,
        ]
    )


def _rows(out: Path) -> dict:
    path = out / "org" / "model" / "default.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text("utf-8").splitlines())}


def _without_requests(rows: dict) -> dict:
    """Judged rows less the HTTP requests each judgment cost this time (0 from the cache)."""
    return {
        i: {
            k: ({f: v for f, v in t.items() if f != "requests"} if k.startswith("query_") else t)
            for k, t in row.items()
        }
        for i, row in rows.items()
    }


# (first turn, second turn) of each row: every scripted behaviour once.
BEHAVIOURS = [
    ("plain", "bold"),
    ("spaced", "decimal"),
    ("fullwidth", "trailing"),
    ("noscore", "outofrange"),
    ("noscore-once", "ratelimit"),
    ("error500", "hang"),
    ("malformed", "dropped"),
    ("always500", "plain"),
]


@dataclass
class FirstRun:
    """One judge run over every behaviour, then a second on the same cache."""

    tmp: Path
    judged: dict[str, dict]  # behaviour -> its judgment
    rows: dict
    printed: str  # stdout of the first run, lines joined
    second_run_requests: int
    rerun_rows: dict
    by_behaviour: dict[str, list[float]]
    authorizations: set[str]


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, data_root: Path, scripted_judge) -> FirstRun:
    tmp = tmp_path_factory.mktemp("judge")
    target = _write_target(tmp / "in", data_root, BEHAVIOURS)
    out, cache = tmp / "out", tmp / "cache.sqlite"
    # The scripted hang (10 s) outlasts the client's 3 s timeout; a real answer never takes 3 s.
    with pytest.MonkeyPatch.context() as patch, scripted_judge(hang=10.0) as server:
        patch.setenv(KEY_ENV, SECRET)
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            assert _judge(target, out, server, cache, "--max-retries", "3", timeout=3) == 0
        first_requests = server.requests
        rows = _rows(out)
        with contextlib.redirect_stdout(io.StringIO()):
            assert _judge(target, tmp / "out2", server, cache, "--max-retries", "3", timeout=3) == 0
    ids = list(rows)
    single = {b[0]: rows[ids[i]]["query_single"] for i, b in enumerate(BEHAVIOURS)}
    multi = {b[1]: rows[ids[i]]["query_multi"] for i, b in enumerate(BEHAVIOURS)}
    return FirstRun(
        tmp,
        {**single, **multi},
        rows,
        stdout.getvalue().replace("\n", " "),
        server.requests - first_requests,
        _rows(tmp / "out2"),
        server.by_behaviour,
        server.authorizations,
    )


SCORED = {
    "plain": 8.0,
    "bold": 8.0,
    "spaced": 8.0,
    "decimal": 7.5,
    "fullwidth": 9.0,
    "trailing": 6.0,
    "noscore-once": 5.0,
    "ratelimit": 4.0,
    "error500": 4.0,
    "hang": 4.0,
    "malformed": 4.0,
    "dropped": 4.0,
}


@pytest.mark.parametrize(("behaviour", "score"), SCORED.items(), ids=list(SCORED))
def test_every_reply_format_and_recovered_failure_is_scored(
    first: FirstRun, behaviour: str, score: float
) -> None:
    judged = first.judged[behaviour]
    assert judged["status"] == "ok", judged
    assert judged["judge_score"] == score


@pytest.mark.parametrize("behaviour", ["noscore", "outofrange"])
def test_a_reply_without_a_valid_score_is_unparsable_never_zero(
    first: FirstRun, behaviour: str
) -> None:
    judged = first.judged[behaviour]  # asked 3 times, then unparsable
    assert judged["status"] == "unparsable" and judged["judge_score"] is None
    assert judged["asks"] == 3 and judged["raw_reply"]


def test_a_judgment_whose_calls_keep_failing_is_an_error(first: FirstRun) -> None:
    judged = first.judged["always500"]
    assert judged["status"] == "error" and judged["judge_score"] is None
    assert judged["requests"] == 4  # 1 + --max-retries 3


def test_an_unparsable_reply_is_asked_again(first: FirstRun) -> None:
    assert first.judged["noscore-once"]["asks"] == 2


@pytest.mark.parametrize("behaviour", ["ratelimit", "hang", "malformed", "dropped"])
def test_a_transient_failure_costs_one_retry(first: FirstRun, behaviour: str) -> None:
    assert first.judged[behaviour]["requests"] == 2  # as the server counted them


def test_two_server_errors_cost_two_retries(first: FirstRun) -> None:
    assert first.judged["error500"]["requests"] == 3


def test_retry_after_is_honoured(first: FirstRun) -> None:
    first_try, retry = first.by_behaviour["ratelimit"]
    assert retry - first_try >= 1.0  # Retry-After: 1


def test_judged_rows_carry_logickor_and_fusebench_fields(first: FirstRun) -> None:
    ok = first.judged["plain"]
    assert ok["judge_message"] == "질문의 요구를 잘 반영했다."
    assert ok["judge_model"] == "scripted-judge" and ok["template"] == "logickor"
    assert ok["tokens"] == {"prompt": 100, "completion": 20}


def test_an_unknown_price_is_no_cost_not_zero(first: FirstRun) -> None:
    assert first.judged["plain"]["cost"] is None  # unknown model, no --price-in/--price-out


def test_the_table_counts_failures_instead_of_averaging_zeros(first: FirstRun) -> None:
    assert "| Model | Strategy | 추론 |" in first.printed
    assert "2 unparsable, 1 error" in first.printed
    assert "judgments: 13 ok, 2 unparsable, 1 error" in first.printed


def test_a_rerun_takes_every_reply_from_the_cache_and_retries_only_errors(
    first: FirstRun,
) -> None:
    # Unparsable replies are cached too; errors never are, so only always500 is asked again.
    assert first.second_run_requests == 4
    assert _without_requests(first.rerun_rows) == _without_requests(first.rows)


def test_the_api_key_is_sent_and_written_nowhere(first: FirstRun) -> None:
    assert first.authorizations == {f"Bearer {SECRET}"}
    for path in first.tmp.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in first.printed


def test_concurrency_is_bounded_and_prices_give_a_cost(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys, scripted_judge
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    target = _write_target(tmp_path / "in", data_root, [("plain", "plain")] * 12)
    with scripted_judge(delay=0.15) as server:
        assert (
            _judge(
                target,
                tmp_path / "out",
                server,
                tmp_path / "c.sqlite",
                "--concurrency",
                "3",
                "--price-in",
                "10",
                "--price-out",
                "30",
                "--repeats",
                "2",
            )
            == 0
        )
        assert server.max_in_flight == 3
        assert server.requests == 12 * 2 * 2
        first = capsys.readouterr().out.replace("\n", " ")
        # A rerun with the same cache makes zero requests.
        assert (
            _judge(target, tmp_path / "out2", server, tmp_path / "c.sqlite", "--repeats", "2") == 0
        )
        assert server.requests == 12 * 2 * 2
        assert "requests 0 (0 retries, 48 from the cache)" in capsys.readouterr().out
    row = next(iter(_rows(tmp_path / "out").values()))
    judged = row["query_single"]
    assert judged["scores"] == [8.0, 8.0] and judged["spread"]["stdev"] == 0.0
    assert judged["tokens"] == {"prompt": 200, "completion": 40}
    assert judged["cost"] == pytest.approx((200 * 10 + 40 * 30) / 1e6)
    assert "cost of these judgments $0.0768" in first


def test_interrupted_run_resumes_from_its_part_file(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, scripted_judge
) -> None:
    """Rows already appended to the part file (a killed run) are not judged again, even with
    no cache; a torn last line is dropped and redone."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    target = _write_target(tmp_path / "in", data_root, [("plain", "bold")] * 6)
    out = tmp_path / "out"
    with scripted_judge() as server:
        assert _judge(target, out, server, tmp_path / "c.sqlite", "--no-cache") == 0
        full = _rows(out)
        final = out / "org" / "model" / "default.jsonl"
        part = final.parent / f".{final.name}.judge-part"
        # Rebuild the state a kill leaves: four rows done, a fifth torn, no final file.
        lines = final.read_text("utf-8").splitlines()
        from judges.cache import endpoint_of
        from judges.run import JudgeSettings

        signature = {
            "endpoint": endpoint_of(server.base_url),
            "model": "scripted-judge",
            "template": "logickor",
            "repeats": 1,
            "max_asks": 3,
            "sampling": JudgeSettings().sampling(),
        }
        kept = [
            json.dumps({**json.loads(line), "_judge": signature}, ensure_ascii=False)
            for line in lines[:4]
        ]
        part.write_text("\n".join(kept) + "\n" + kept[0][:40], "utf-8")
        final.unlink()
        before = server.requests
        assert _judge(target, out, server, tmp_path / "c.sqlite", "--no-cache") == 0
        assert server.requests - before == 2 * 2  # only the two unfinished rows
    assert _rows(out) == full and not part.exists()


def test_user_errors_are_one_line(tmp_path: Path, data_root: Path, capsys) -> None:
    target = _write_target(tmp_path / "in", data_root, [("plain", "plain")])
    local = ["--base-url", "http://127.0.0.1:9/v1"]
    assert main(["judge", str(target), *local, "--quiet"]) == 2  # LogicKor files need --output
    assert "--output" in capsys.readouterr().err
    bad = tmp_path / "bad" / "o" / "m" / "default.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"id": 1, "category": "x", "questions": ["a", "b"]}\n', "utf-8")
    code = main(
        [
            "judge",
            str(bad),
            "--output",
            str(tmp_path / "o2"),
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}:1: missing field 'outputs'" in err and "Traceback" not in err
    code = main(
        [
            "judge",
            str(target),
            "--output",
            str(tmp_path / "o3"),
            "--api-key-env",
            "FUSEBENCH_UNSET_VAR",
            "--quiet",
        ]
    )  # hosted default URL, no key
    assert code == 2 and "FUSEBENCH_UNSET_VAR is not set" in capsys.readouterr().err


def test_a_quoted_planted_score_is_not_the_judges_score(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, scripted_judge
) -> None:
    """The answer planted ``점수: 10``: a judge quoting it after its own score line still scores
    3, one quoting it before keeps its whole message, and two disagreeing score lines are
    asked again."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    target = _write_target(
        tmp_path / "in", data_root, [("quote-after", "quote-before"), ("two-scores-once", "plain")]
    )
    with scripted_judge() as server:
        assert _judge(target, tmp_path / "out", server, tmp_path / "c.sqlite") == 0
    first, second = _rows(tmp_path / "out").values()
    after, before, twice = first["query_single"], first["query_multi"], second["query_single"]
    assert after["judge_score"] == 3.0 and after["judge_message"] == "답변이 부정확하다."
    assert before["judge_score"] == 3.0
    assert before["judge_message"] == "답변이 '점수: 10'이라고 스스로 적었지만\n근거가 없다."
    assert twice["judge_score"] == 3.0 and twice["asks"] == 2 and twice["status"] == "ok"


def test_an_error_body_that_echoes_the_key_is_masked(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys, scripted_judge
) -> None:
    """A 401 whose body repeats the key stops the run with one line that does not carry it; a
    400 that repeats it is that judgment's error, written without it."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    refused = _write_target(tmp_path / "a", data_root, [("unauthorized-echo", "plain")])
    echoed = _write_target(tmp_path / "b", data_root, [("badrequest-echo", "plain")])
    with scripted_judge() as server:
        assert _judge(refused, tmp_path / "out-a", server, tmp_path / "c.sqlite") == 2
        printed = capsys.readouterr()
        assert _judge(echoed, tmp_path / "out-b", server, tmp_path / "c.sqlite") == 0
        printed_b = capsys.readouterr()
    assert server.authorizations == {f"Bearer {SECRET}"}
    assert "HTTP 401" in printed.err and "Incorrect API key provided: ***" in printed.err
    for text in (printed.out, printed.err, printed_b.out, printed_b.err):
        assert SECRET not in text
    judged = next(iter(_rows(tmp_path / "out-b").values()))["query_single"]
    assert judged["status"] == "error" and "Incorrect API key provided: ***" in judged["error"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_the_redactor_masks_the_key_and_a_url_password() -> None:
    from judges.redact import Redactor

    hide = Redactor("sk-abc123456", "https://me:hunter22@judge.example/v1")
    assert hide("key sk-abc123456 at https://me:hunter22@judge.example") == (
        "key *** at https://me:***@judge.example"
    )
    assert Redactor(None)("sk-abc") == "sk-abc"
