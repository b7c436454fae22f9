"""A judge endpoint that cannot be connected to: a port nothing listens on, and a real server
on 127.0.0.1 that goes away in the middle of a run.

The run stops after ``--max-connection-failures`` calls in a row failed to connect (each after
its retries), with one line naming the endpoint (never its key) and exit 1, instead of turning
every judgment into an error and exiting 0; the part file keeps what was judged, and a rerun
against a live endpoint asks only what is left (checked with ``--no-cache``, so the part file
is the only memory). Retries are made fast with ``--max-retries``/``--backoff``.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from judges.cache import ReplyCache
from judges.client import CallFailed, ClientSettings, JudgeClient
from judges.errors import EndpointUnreachable

SECRET = "sk-test-DO-NOT-LEAK-77c1"
KEY_ENV = "FUSEBENCH_TEST_UNREACHABLE_KEY"
FAST = ("--max-retries", "1", "--backoff", "0.01", "--quiet", "--api-key-env", KEY_ENV)
SCORE = "평가: 무난하다.\n점수: 7"


def _refused_port() -> int:
    """A port on 127.0.0.1 that refuses connections: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _files(root: Path, data_root: Path, n: int) -> tuple[Path, Path]:
    """A base and an other model's LogicKor file over the first ``n`` real questions."""
    questions = [
        json.loads(line)
        for line in (data_root / "logickor" / "questions.jsonl").read_text("utf-8").splitlines()
    ][:n]
    paths = []
    for name, answer in (("org/base", "기본 답 {}"), ("org/fused", "조금 더 긴 답변 {}")):
        path = root / name / "default.jsonl"
        path.parent.mkdir(parents=True)
        rows = [{**q, "outputs": [answer.format(q["id"])] * 2} for q in questions]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        paths.append(path)
    return paths[0], paths[1]


def _run(*args: str) -> tuple[int, str, str, float]:
    """The CLI in this process: (exit code, stdout, stderr, seconds)."""
    start = time.monotonic()
    with (
        contextlib.redirect_stdout(io.StringIO()) as out,
        contextlib.redirect_stderr(io.StringIO()) as err,
    ):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue(), time.monotonic() - start


def _one_error_line(err: str, endpoint: str, n: int) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith(f"error: {endpoint}: {n} consecutive requests failed to connect"), line
    assert "Traceback" not in err and SECRET not in err and "hunter2" not in err
    return line


class Dying:
    """A reply function for the scripted judge that takes its server down (listening socket
    closed: later connections are refused) once it has answered ``after`` requests."""

    def __init__(self, reply: Any, after: int) -> None:
        self.reply, self.after = reply, after
        self.server: Any = None
        self.answered = 0
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict]) -> str:
        with self.lock:
            self.answered += 1
            if self.answered == self.after:
                threading.Thread(target=self._close, daemon=True).start()
        return self.reply(messages) if callable(self.reply) else self.reply

    def _close(self) -> None:
        self.server.server.shutdown()
        self.server.server.server_close()


def _part_turns(part: Path) -> dict[tuple[Any, str], str]:
    """(id, turn) -> status of what a judge part file keeps (the latest line per row)."""
    rows = {r["id"]: r for r in map(json.loads, part.read_text("utf-8").splitlines())}
    return {
        (i, t): r[t]["status"] for i, r in rows.items() for t in ("query_single", "query_multi")
    }


# ---------------------------------------------------------------- a port that refuses


def test_a_refused_port_stops_judging_with_one_line_and_exit_1(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    base, _ = _files(tmp_path / "in", data_root, 12)
    port = _refused_port()
    url = f"http://judge:hunter2@127.0.0.1:{port}/v1"
    code, out, err, seconds = _run(
        "judge", str(base), "--output", str(tmp_path / "out"), "--base-url", url, *FAST
    )
    assert code == 1 and out == ""
    line = _one_error_line(err, f"http://127.0.0.1:{port}/v1", 3)
    assert "Connection refused" in line and "each after 2 tries" in line
    assert "no judgment of this file had finished" in line
    assert seconds < 20  # not 24 judgments each waiting through its retries
    judged = tmp_path / "out" / "org" / "base" / "default.jsonl"
    assert not judged.exists() and not (tmp_path / "out" / "judge.json").exists()


def test_the_number_of_failures_in_a_row_is_an_option(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    base, _ = _files(tmp_path / "in", data_root, 6)
    port = _refused_port()
    code, _, err, _ = _run(
        "judge", str(base), "--output", str(tmp_path / "out"),
        "--base-url", f"http://127.0.0.1:{port}/v1", "--max-connection-failures", "5",
        "--concurrency", "1", *FAST,
    )  # fmt: skip
    assert code == 1
    _one_error_line(err, f"http://127.0.0.1:{port}/v1", 5)


def test_pairwise_judging_against_a_refused_port_stops_too(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    base, other = _files(tmp_path / "in", data_root, 12)
    port = _refused_port()
    code, out, err, seconds = _run(
        "judge", str(base), "--pairwise", str(other), "--output", str(tmp_path / "out"),
        "--base-url", f"http://127.0.0.1:{port}/v1", *FAST,
    )  # fmt: skip
    assert code == 1 and out == "" and seconds < 20
    _one_error_line(err, f"http://127.0.0.1:{port}/v1", 3)
    assert not (tmp_path / "out" / "pairwise.json").exists()


def test_a_host_that_drops_connection_attempts_stops_the_run_within_the_connect_timeout(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listening socket whose accept queue is full (nothing accepts) drops new connection
    attempts, as a firewalled host does: each try fails in the connect timeout (at most
    --timeout), not after a reply that never comes."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    base, _ = _files(tmp_path / "in", data_root, 4)
    with socket.socket() as listening, socket.socket() as filler:
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        port = listening.getsockname()[1]
        filler.connect(("127.0.0.1", port))  # the one queued connection: the queue is full
        code, _, err, _ = _run(
            "judge", str(base), "--output", str(tmp_path / "out"),
            "--base-url", f"http://127.0.0.1:{port}/v1", "--timeout", "0.5", "--concurrency",
            "1", *FAST,
        )  # fmt: skip
    assert code == 1
    line = _one_error_line(err, f"http://127.0.0.1:{port}/v1", 3)
    assert "(no connection within 0.5s), each after 2 tries" in line


# ---------------------------------------------------------------- a server that goes away


def test_a_server_that_goes_away_stops_the_run_and_a_rerun_asks_only_the_rest(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, scripted_judge
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    base, _ = _files(tmp_path / "in", data_root, 12)  # 24 judgments
    out = tmp_path / "out"
    args = ("judge", str(base), "--output", str(out), "--no-cache", "--concurrency", "2", *FAST)
    dying = Dying(SCORE, after=9)
    with scripted_judge(respond=dying) as server:
        dying.server = server
        port = server.server.server_address[1]
        code, _, err, _ = _run(*args, "--base-url", server.base_url)
        first = server.requests
    assert code == 1
    line = _one_error_line(err, server.base_url, 3)
    judged = out / "org" / "base" / "default.jsonl"
    part = judged.parent / f".{judged.name}.judge-part"
    assert not judged.exists() and part.is_file()
    kept = _part_turns(part)
    finished = sum(status == "ok" for status in kept.values())
    assert finished >= 9 - 2  # at most the two in flight when it went down were lost
    assert f"the {finished} judgments finished are kept in {part}" in line
    assert first >= 9
    # The endpoint is back (same port): only what is left is asked, nothing twice.
    with scripted_judge(respond=lambda messages: SCORE, port=port) as server:
        code, printed, err, _ = _run(*args, "--base-url", server.base_url)
        assert code == 0, err
        assert server.requests == 24 - finished
    assert "judgments: 24 ok, 0 unparsable, 0 error" in printed.replace("\n", " ")
    rows = [json.loads(line) for line in judged.read_text("utf-8").splitlines()]
    assert len(rows) == 12 and not part.exists()


def test_a_pairwise_run_whose_server_goes_away_resumes_without_asking_twice(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, scripted_judge,
    pairwise_judges,
) -> None:  # fmt: skip
    monkeypatch.setenv(KEY_ENV, SECRET)
    base, other = _files(tmp_path / "in", data_root, 10)  # 20 judgments, 40 requests
    out = tmp_path / "out"
    args = (
        "judge", str(base), "--pairwise", str(other), "--output", str(out), "--no-cache",
        "--concurrency", "2", *FAST,
    )  # fmt: skip
    dying = Dying(pairwise_judges.prefers_longer, after=15)
    with scripted_judge(respond=dying) as server:
        dying.server = server
        port = server.server.server_address[1]
        code, _, err, _ = _run(*args, "--base-url", server.base_url)
    assert code == 1
    line = _one_error_line(err, server.base_url, 3)
    (part,) = (out / "pairwise").rglob(".*.pairwise-part")
    kept = [json.loads(x) for x in part.read_text("utf-8").splitlines()]
    finished = sum(j["status"] == "ok" for j in kept)
    assert finished >= 15 // 2 - 2
    assert f"the {finished} judgments finished are kept in {part}" in line
    with scripted_judge(respond=pairwise_judges.prefers_longer, port=port) as server:
        code, printed, err, _ = _run(*args, "--base-url", server.base_url)
        assert code == 0, err
        assert server.requests == 2 * (20 - finished)  # both orders of each judgment left
    assert "judgments: 20 ok, 0 unparsable, 0 error" in printed.replace("\n", " ")
    assert not part.exists()


def test_a_row_half_judged_when_the_run_stops_keeps_its_judged_turn(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, scripted_judge
) -> None:
    """The first question's single-turn judgment is answered, its multi-turn one is still in
    flight when the server goes away (asked by the second question's judgment): the part file
    keeps the answered turn, and the rerun (no cache) asks everything else, nothing twice."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    questions = [
        json.loads(line)
        for line in (data_root / "logickor" / "questions.jsonl").read_text("utf-8").splitlines()
    ][:3]
    target = tmp_path / "in" / "org" / "base" / "default.jsonl"
    target.parent.mkdir(parents=True)
    rows = [{**q, "outputs": [f"S-{q['id']}", f"M-{q['id']}"]} for q in questions]
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    first, second = (q["id"] for q in questions[:2])
    dead = threading.Event()
    holder: dict[str, Any] = {}

    def respond(messages: list[dict]) -> str:
        user = messages[-1]["content"]
        if f"M-{first}" in user:  # in flight until after the run stopped
            dead.wait(10)
            time.sleep(1.0)
        elif f"S-{second}" in user and not dead.is_set():
            holder["server"].server.shutdown()
            holder["server"].server.server_close()  # later connections are refused
            dead.set()
            return "HTTP 500"  # this try reached the server; its retry will not
        return SCORE

    out = tmp_path / "out"
    args = (
        "judge", str(target), "--output", str(out), "--no-cache", "--concurrency", "2",
        "--max-connection-failures", "1", *FAST,
    )  # fmt: skip
    with scripted_judge(respond=respond) as server:
        holder["server"] = server
        port = server.server.server_address[1]
        code, _, err, _ = _run(*args, "--base-url", server.base_url)
    assert code == 1
    line = _one_error_line(err, server.base_url, 1)
    judged = out / "org" / "base" / "default.jsonl"
    part = judged.parent / f".{judged.name}.judge-part"
    assert _part_turns(part) == {(first, "query_single"): "ok", (first, "query_multi"): "error"}
    assert f"the 1 judgments finished are kept in {part}" in line
    with scripted_judge(respond=lambda messages: SCORE, port=port) as server:
        code, _, err, _ = _run(*args, "--base-url", server.base_url)
        assert code == 0, err
        assert server.requests == 3 * 2 - 1
    assert not part.exists()


# ---------------------------------------------------------------- "in a row"


def test_only_failures_in_a_row_stop_the_run(tmp_path: Path, scripted_judge) -> None:
    """Two calls that cannot connect are those judgments' errors; an answer in between starts
    the count again; the third failure in a row stops the run, and every later call at once."""
    port = _refused_port()
    settings = ClientSettings(
        base_url=f"http://127.0.0.1:{port}/v1",
        model="scripted-judge",
        max_retries=1,
        max_connection_failures=3,
    )
    sleeps: list[float] = []
    client = JudgeClient(settings, None, ReplyCache(None), sleep=sleeps.append)

    def ask(n: int) -> Any:
        messages = [{"role": "user", "content": f"답변 {n} S:plain"}]
        return client.ask(messages, {"temperature": 0.0}, {"repeat": 0, "ask": 0})

    try:
        for n in range(2):
            with pytest.raises(CallFailed, match="Connection refused"):
                ask(n)
        with scripted_judge(port=port):
            assert ask(2).text.endswith("점수: 8")  # the endpoint answered: the count restarts
        for n in range(3, 5):
            with pytest.raises(CallFailed):
                ask(n)
        with pytest.raises(EndpointUnreachable, match="3 consecutive requests failed"):
            ask(5)
        requests = client.stats.requests
        with pytest.raises(EndpointUnreachable):
            ask(6)  # the run is stopping: no request is sent
        assert client.stats.requests == requests
    finally:
        client.close()


def test_the_connect_timeout_is_shorter_than_the_reply_timeout() -> None:
    """A dropped connection attempt fails in ``connect_timeout``, although a reply may take
    the whole ``timeout`` (judges' replies take long; opening a connection does not)."""
    with socket.socket() as listening, socket.socket() as filler:
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        port = listening.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        settings = ClientSettings(
            base_url=f"http://127.0.0.1:{port}/v1",
            model="scripted-judge",
            timeout=60.0,
            connect_timeout=0.3,
            max_retries=1,
        )
        client = JudgeClient(settings, None, ReplyCache(None), sleep=lambda seconds: None)
        start = time.monotonic()
        try:
            with pytest.raises(CallFailed, match=r"no connection within 0.3s"):
                client.ask([{"role": "user", "content": "x"}], {}, {"repeat": 0, "ask": 0})
        finally:
            client.close()
    assert time.monotonic() - start < 5
