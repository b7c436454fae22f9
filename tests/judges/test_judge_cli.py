"""``fusebench judge`` against a scripted OpenAI-compatible server on 127.0.0.1.

Every reply format, 429 with Retry-After, 500s, a hang past the client timeout, a dropped
connection, malformed JSON and replies without a score; statuses, retries, the cache (a second
run makes zero requests), the concurrency bound, resume, and no API key in any written file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.judges.scripted_server import ScriptedJudge

SECRET = "sk-test-DO-NOT-LEAK-4f2a9c"
KEY_ENV = "FUSEBENCH_TEST_JUDGE_KEY"


def _write_target(root: Path, data_root: Path, behaviours: list[tuple[str, str]]) -> Path:
    """LogicKor's real questions with answers carrying the behaviour markers."""
    questions = [json.loads(line) for line in
                 (data_root / "logickor" / "questions.jsonl").read_text("utf-8").splitlines()]  # fmt: skip
    path = root / "org" / "model" / "default.jsonl"
    path.parent.mkdir(parents=True)
    rows = []
    for q, (single, multi) in zip(questions, behaviours, strict=False):
        rows.append({"id": q["id"], "category": q["category"], "questions": q["questions"],
                     "outputs": [f"첫 답변 S:{single}", f"둘째 답변 M:{multi}"],
                     "references": q["references"]})  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return root


def _judge(target: Path, out: Path, server: ScriptedJudge, cache: Path, *extra: str) -> int:
    return main(["judge", str(target), "--output", str(out), "--base-url", server.base_url,
                 "--judge-model", "scripted-judge", "--api-key-env", KEY_ENV,
                 "--cache", str(cache), "--backoff", "0.05", "--timeout", "1",
                 "--quiet", *extra])  # fmt: skip


def _rows(out: Path) -> dict:
    path = out / "org" / "model" / "default.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text("utf-8").splitlines())}


def _without_requests(rows: dict) -> dict:
    """Judged rows less the HTTP requests each judgment cost this time (0 from the cache)."""
    return {i: {k: ({f: v for f, v in t.items() if f != "requests"} if k.startswith("query_")
                    else t) for k, t in row.items()} for i, row in rows.items()}  # fmt: skip


BEHAVIOURS = [
    ("plain", "bold"), ("spaced", "decimal"), ("fullwidth", "trailing"),
    ("noscore", "outofrange"), ("noscore-once", "ratelimit"), ("error500", "hang"),
    ("malformed", "dropped"), ("always500", "plain"),
]  # fmt: skip


def test_every_failure_mode_statuses_retries_cache_and_no_key(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    target = _write_target(tmp_path / "in", data_root, BEHAVIOURS)
    out, cache = tmp_path / "out", tmp_path / "cache.sqlite"
    with ScriptedJudge() as server:
        assert _judge(target, out, server, cache, "--max-retries", "3") == 0
        first = server.requests
        printed = capsys.readouterr().out
        rows = _rows(out)

        ids = list(rows)
        single = {b[0]: rows[ids[i]]["query_single"] for i, b in enumerate(BEHAVIOURS)}
        multi = {b[1]: rows[ids[i]]["query_multi"] for i, b in enumerate(BEHAVIOURS)}
        judged = {**single, **multi}
        expected = {"plain": 8.0, "bold": 8.0, "spaced": 8.0, "decimal": 7.5, "fullwidth": 9.0,
                    "trailing": 6.0, "noscore-once": 5.0, "ratelimit": 4.0, "error500": 4.0,
                    "hang": 4.0, "malformed": 4.0, "dropped": 4.0}  # fmt: skip
        for name, score in expected.items():
            assert judged[name]["status"] == "ok", (name, judged[name])
            assert judged[name]["judge_score"] == score, name
        for name in ("noscore", "outofrange"):  # asked 3 times, then unparsable, never 0
            assert judged[name]["status"] == "unparsable" and judged[name]["judge_score"] is None
            assert judged[name]["asks"] == 3 and judged[name]["raw_reply"]
        assert judged["always500"]["status"] == "error"
        assert judged["always500"]["judge_score"] is None
        assert judged["always500"]["requests"] == 4  # 1 + --max-retries 3
        # Retries: what each transient failure cost, as the server counted it.
        assert judged["noscore-once"]["asks"] == 2
        for name in ("ratelimit", "hang", "malformed", "dropped"):
            assert judged[name]["requests"] == 2, name
        assert judged["error500"]["requests"] == 3
        # Retry-After: 1 was honoured.
        first_try, retry = server.by_behaviour["ratelimit"]
        assert retry - first_try >= 1.0
        # LogicKor's fields and fusebench's.
        ok = judged["plain"]
        assert ok["judge_message"] == "질문의 요구를 잘 반영했다."
        assert ok["judge_model"] == "scripted-judge" and ok["template"] == "logickor"
        assert ok["tokens"] == {"prompt": 100, "completion": 20}
        assert ok["cost"] is None  # unknown model, no --price-in/--price-out: not 0
        # The table: the unparsable and errored judgments are counted, not averaged as 0.
        assert "| Model | Strategy | 추론 |" in printed
        assert "2 unparsable, 1 error" in printed.replace("\n", " ")
        assert "judgments: 13 ok, 2 unparsable, 1 error" in printed.replace("\n", " ")

        # Second run, same cache: every reply comes from the cache (unparsable ones too);
        # only the errored judgment is tried again (errors are never cached).
        assert _judge(target, tmp_path / "out2", server, cache, "--max-retries", "3") == 0
        assert server.requests == first + 4
        assert _without_requests(_rows(tmp_path / "out2")) == _without_requests(rows)
    assert server.authorizations == {f"Bearer {SECRET}"}  # the key was sent ...
    for path in [*tmp_path.rglob("*")]:  # ... and written nowhere
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in printed


def test_concurrency_is_bounded_and_prices_give_a_cost(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    target = _write_target(tmp_path / "in", data_root, [("plain", "plain")] * 12)
    with ScriptedJudge(delay=0.15) as server:
        assert _judge(target, tmp_path / "out", server, tmp_path / "c.sqlite", "--concurrency", "3",
                      "--price-in", "10", "--price-out", "30", "--repeats", "2") == 0  # fmt: skip
        assert server.max_in_flight == 3
        assert server.requests == 12 * 2 * 2
        first = capsys.readouterr().out.replace("\n", " ")
        # A rerun with the same cache makes zero requests.
        assert _judge(target, tmp_path / "out2", server, tmp_path / "c.sqlite",
                      "--repeats", "2") == 0  # fmt: skip
        assert server.requests == 12 * 2 * 2
        assert "requests 0 (0 retries, 48 from the cache)" in capsys.readouterr().out
    row = next(iter(_rows(tmp_path / "out").values()))
    judged = row["query_single"]
    assert judged["scores"] == [8.0, 8.0] and judged["spread"]["stdev"] == 0.0
    assert judged["tokens"] == {"prompt": 200, "completion": 40}
    assert judged["cost"] == pytest.approx((200 * 10 + 40 * 30) / 1e6)
    assert "cost of these judgments $0.0768" in first


def test_interrupted_run_resumes_from_its_part_file(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows already appended to the part file (a killed run) are not judged again, even with
    no cache; a torn last line is dropped and redone."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    target = _write_target(tmp_path / "in", data_root, [("plain", "bold")] * 6)
    out = tmp_path / "out"
    with ScriptedJudge() as server:
        assert _judge(target, out, server, tmp_path / "c.sqlite", "--no-cache") == 0
        full = _rows(out)
        final = out / "org" / "model" / "default.jsonl"
        part = final.parent / f".{final.name}.judge-part"
        # Rebuild the state a kill leaves: four rows done, a fifth torn, no final file.
        lines = final.read_text("utf-8").splitlines()
        from judges.run import JudgeSettings

        signature = {"model": "scripted-judge", "template": "logickor", "repeats": 1,
                     "max_asks": 3, "sampling": JudgeSettings().sampling()}  # fmt: skip
        kept = [json.dumps({**json.loads(line), "_judge": signature}, ensure_ascii=False)
                for line in lines[:4]]  # fmt: skip
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
    code = main(["judge", str(bad), "--output", str(tmp_path / "o2"), "--base-url",
                 "http://127.0.0.1:9/v1", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}:1: missing field 'outputs'" in err and "Traceback" not in err
    code = main(["judge", str(target), "--output", str(tmp_path / "o3"), "--api-key-env",
                 "FUSEBENCH_UNSET_VAR", "--quiet"])  # hosted default URL, no key  # fmt: skip
    assert code == 2 and "FUSEBENCH_UNSET_VAR is not set" in capsys.readouterr().err
