"""``fusebench judge`` on texts UTF-8 cannot carry, and against two endpoints of one model name.

A lone surrogate (``"\\ud800"``) in a model's answer, and in the judge's reply, is judged,
written back as the escape it was read as, and its paid reply kept in the cache; the same
judge model name at another URL is another judge: neither its cache entries nor an
interrupted run's part file are reused there. Real ``fusebench judge`` runs against scripted
judges on 127.0.0.1 (``tests/judges/scripted_server.py``).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from judges.cache import cache_key, endpoint_of

FUSEBENCH = str(Path(sys.executable).parent / "fusebench")  # the installed console script
BROKEN = "깨진 글자 \ud800 끝"  # what a generation cut inside a UTF-16 pair holds
REPLY = "평가: 답변의 '\udc80' 부분은 읽을 수 없었다.\n점수: 6"  # a judge's reply holding one


def _questions(data_root: Path, n: int) -> list[dict]:
    path = data_root / "logickor" / "questions.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").split("\n")[:n]]


def _answers(root: Path, data_root: Path, outputs: list[list[str]], name: str = "org/m") -> Path:
    """A LogicKor answers file as ``generate`` writes it: JSON escapes for what is not UTF-8."""
    rows = [
        {
            "id": q["id"],
            "category": q["category"],
            "questions": q["questions"],
            "outputs": out,
            "references": q["references"],
        }
        for q, out in zip(_questions(data_root, len(outputs)), outputs, strict=True)
    ]
    path = root / name / "default.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def _judge(target: Path, out: Path, url: str, cache: Path, *extra: str) -> int:
    return main(
        [
            "judge",
            str(target),
            "--output",
            str(out),
            "--base-url",
            url,
            "--judge-model",
            "same-name",
            "--cache",
            str(cache),
            "--backoff",
            "0.01",
            "--quiet",
            *extra,
        ]
    )


def _rows(path: Path) -> list[dict]:
    """Rows of a written JSON Lines file, which must be valid UTF-8 throughout."""
    text = path.read_bytes().decode("utf-8")  # strict: no raw surrogate bytes written
    return [json.loads(line) for line in text.split("\n") if line]


# ---------------------------------------------------------------- item 7: lone surrogates


@pytest.mark.parametrize("cache", ["cache", "no-cache"])
def test_a_lone_surrogate_is_judged_written_back_and_its_paid_reply_kept(
    tmp_path: Path, data_root: Path, scripted_judge, cache: str
) -> None:
    answers = [[BROKEN, f"둘째 {BROKEN}"], ["가", "나"]]
    target = _answers(tmp_path / "in", data_root, answers).parent.parent.parent
    extra = ["--no-cache"] if cache == "no-cache" else []
    db = tmp_path / "c.sqlite"
    with scripted_judge(respond=lambda messages: REPLY) as server:
        assert _judge(target, tmp_path / "out", server.base_url, db, *extra) == 0
        assert server.requests == 4
        # UTF-8 cannot carry the surrogate: the judge was sent U+FFFD in its place.
        sent = [m["content"] for body in server.bodies for m in body["messages"]]
        assert any("깨진 글자 \ufffd 끝" in text for text in sent)
        judged = _rows(tmp_path / "out" / "org" / "m" / "default.jsonl")
        assert [r["outputs"] for r in judged] == answers
        assert b"\\ud800" in (tmp_path / "out" / "org" / "m" / "default.jsonl").read_bytes()
        for row in judged:
            for turn in ("query_single", "query_multi"):
                assert row[turn]["status"] == "ok" and row[turn]["judge_score"] == 6.0
                assert row[turn]["raw_reply"] == REPLY  # the reply's surrogate kept too
        # ``report`` reads the judged file back (its answer-set key hashes the surrogate).
        assert main(["report", str(tmp_path / "out"), "--format", "json"]) == 0
        # ... and its HTML page, which shows U+FFFD where UTF-8 has no form for it.
        page = tmp_path / "page.html"
        assert (
            main(["report", str(tmp_path / "out"), "--format", "html", "--output", str(page)]) == 0
        )
        assert "깨진 글자 \ufffd 끝" in page.read_text(encoding="utf-8")
        if cache == "cache":  # the paid replies are in the cache: a rerun asks nothing
            assert _judge(target, tmp_path / "out2", server.base_url, db) == 0
            assert server.requests == 4
            again = _rows(tmp_path / "out2" / "org" / "m" / "default.jsonl")
            assert [r["query_single"]["raw_reply"] for r in again] == [REPLY, REPLY]
        else:
            assert not db.exists()


def test_pairwise_judging_of_a_lone_surrogate_is_written_and_cached(
    tmp_path: Path, data_root: Path, scripted_judge, pairwise_judges
) -> None:
    base = _answers(tmp_path, data_root, [[BROKEN, "둘째"]], "org/base")
    other = _answers(tmp_path, data_root, [["다른 답", f"다른 {BROKEN}"]], "org/other")
    reply = "평가: A의 '\udc80'는 깨졌다.\n판정: [[B>A]]"
    db = tmp_path / "c.sqlite"
    with scripted_judge(respond=lambda messages: reply) as server:
        code, _ = pairwise_judges.run(base, other, tmp_path / "out", server, db)
        assert code == 0 and server.requests == 2 * 2
        code, _ = pairwise_judges.run(base, other, tmp_path / "out2", server, db)
        assert code == 0 and server.requests == 2 * 2  # every paid reply from the cache
    for out in ("out", "out2"):
        (path,) = (tmp_path / out / "pairwise").rglob("*.jsonl")
        judged = _rows(path)
        assert [j["answers"]["base"] for j in judged] == [BROKEN, "둘째"]
        assert [j["answers"]["other"] for j in judged] == ["다른 답", f"다른 {BROKEN}"]
        assert {j["status"] for j in judged} == {"ok"}
        assert {o["raw_reply"] for j in judged for o in j["orders"]} == {reply}


def test_the_cache_key_and_the_cache_take_lone_surrogates(tmp_path: Path) -> None:
    from judges.cache import Cached, ReplyCache

    messages = [{"role": "user", "content": BROKEN}]
    key = cache_key("m", messages, {}, endpoint="http://127.0.0.1:1/v1")
    plain = cache_key("m", [{"role": "user", "content": "깨진 글자 \ufffd 끝"}], {}, endpoint="x")
    assert key != plain
    cache = ReplyCache(tmp_path / "c.sqlite")
    cache.put(key, "m\udcff", Cached(REPLY, 1, 2), "t")
    cache.close()
    again = ReplyCache(tmp_path / "c.sqlite")  # reopened: read back from the file
    assert again.get(key) == Cached(REPLY, 1, 2)
    again.close()


# ---------------------------------------------------------------- item 10: endpoints


def test_the_same_model_name_at_another_url_is_another_judge(
    tmp_path: Path, data_root: Path, scripted_judge
) -> None:
    """Two live judges answering differently under one model name, one cache: the second
    is asked everything, and each keeps its own cached verdicts."""
    target = _answers(tmp_path / "in", data_root, [["가", "나"]] * 3).parent.parent.parent
    db = tmp_path / "c.sqlite"
    scores = {}
    with scripted_judge(behaviour="plain") as a, scripted_judge(behaviour="decimal") as b:
        assert a.base_url != b.base_url
        for name, server in (("a", a), ("b", b), ("a-again", a), ("b-again", b)):
            before = server.requests
            assert _judge(target, tmp_path / name, server.base_url, db) == 0
            scores[name] = (
                server.requests - before,
                {
                    r[t]["judge_score"]
                    for r in _rows(tmp_path / name / "org" / "m" / "default.jsonl")
                    for t in ("query_single", "query_multi")
                },
            )
    assert scores["a"] == (6, {8.0})
    assert scores["b"] == (6, {7.5})  # not a's cached 8.0
    assert scores["a-again"] == (0, {8.0}) and scores["b-again"] == (0, {7.5})


def test_a_dead_url_never_returns_verdicts_cached_from_a_live_one(
    tmp_path: Path, data_root: Path, scripted_judge
) -> None:
    target = _answers(tmp_path / "in", data_root, [["가", "나"]]).parent.parent.parent
    db = tmp_path / "c.sqlite"
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    with scripted_judge(behaviour="plain") as live:
        assert _judge(target, tmp_path / "live", live.base_url, db) == 0
    code = _judge(target, tmp_path / "dead", dead, db, "--max-retries", "0")
    written = list((tmp_path / "dead").rglob("*.jsonl")) + list(
        (tmp_path / "dead").rglob(".*judge-part")
    )
    statuses = {
        r[t]["status"] for p in written for r in _rows(p) for t in ("query_single", "query_multi")
    }
    assert "ok" not in statuses and (statuses or code != 0)  # errors, or the run refused


def test_an_interrupted_run_is_not_resumed_against_another_url(
    tmp_path: Path, data_root: Path, scripted_judge, fusebench_env: dict[str, str]
) -> None:
    """A run killed (SIGKILL) with rows in its part file, rerun with the same output and
    judge model name at another URL: every row is asked of the new judge."""
    outputs = [[f"답 {i} S:plain", f"답 {i} M:plain"] for i in range(3)] + [["S:hang", "M:plain"]]
    target = _answers(tmp_path / "in", data_root, outputs).parent.parent.parent
    out = tmp_path / "out"
    part = out / "org" / "m" / ".default.jsonl.judge-part"
    with scripted_judge(hang=60) as a:
        args = [str(target), "--output", str(out), "--base-url", a.base_url]
        child = subprocess.Popen(
            [FUSEBENCH, "judge", *args, "--judge-model", "same-name"]
            + ["--no-cache", "--concurrency", "1", "--quiet"],
            env=fusebench_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not (part.is_file() and part.read_text("utf-8").count("\n") >= 3):
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert len(_rows(part)) == 3  # three rows done, the fourth hanging when killed
    with scripted_judge(behaviour="decimal") as b:
        assert _judge(target, out, b.base_url, tmp_path / "c.sqlite", "--no-cache") == 0
        assert b.requests == 4 * 2  # nothing resumed from a's part file
    judged = _rows(out / "org" / "m" / "default.jsonl")
    assert {r[t]["judge_score"] for r in judged for t in ("query_single", "query_multi")} == {7.5}


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("https://api.openai.com/v1", "https://api.openai.com:443/v1"),
        ("https://API.OpenAI.com:443/v1/", "https://api.openai.com:443/v1"),
        ("http://localhost/v1", "http://localhost:80/v1"),
        ("https://me:hunter22@judge.example/v1?api_key=sk-x#f", "https://judge.example:443/v1"),
        ("http://[::1]:8000/v1", "http://[::1]:8000/v1"),
    ],
)
def test_the_endpoint_is_scheme_host_port_and_path_never_a_credential(
    url: str, endpoint: str
) -> None:
    assert endpoint_of(url) == endpoint


@pytest.mark.parametrize(
    "other",
    [
        "http://127.0.0.1:8001/v1",  # port
        "http://127.0.0.2:8000/v1",  # host
        "https://127.0.0.1:8000/v1",  # scheme
        "http://127.0.0.1:8000/openai/v1",  # path
    ],
)
def test_the_key_separates_endpoints(other: str) -> None:
    def key(url: str) -> str:
        return cache_key("m", [{"role": "user", "content": "x"}], {}, endpoint=endpoint_of(url))

    base = "http://127.0.0.1:8000/v1"
    assert key(base) != key(other)
    assert key(base) == key("http://user:pw@127.0.0.1:8000/v1/")  # credentials are not part
