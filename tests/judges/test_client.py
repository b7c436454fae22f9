"""The judge client against the scripted OpenAI-compatible server on 127.0.0.1: what a reply
costs in requests, which failures are retried and how long it waits between tries.

Waits go through an injected ``sleep`` that records them (no test sleeps through a backoff),
and the jitter through a stub that always draws the top of its range, so every wait is exact.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from judges.cache import ReplyCache
from judges.client import CallFailed, ClientSettings, JudgeClient, RateBudget, retry_after
from judges.errors import JudgeError

SAMPLING = {"temperature": 0.0}
INDEX = {"repeat": 0, "ask": 0}


class TopOfRange:
    """A ``random.Random`` stand-in whose ``uniform(a, b)`` is always ``b``: full jitter at
    its largest, so a wait equals its bound."""

    def uniform(self, low: float, high: float) -> float:
        return high


def messages(behaviour: str, system: str = "평가하라.") -> list[dict[str, str]]:
    """A single-turn prompt that asks the scripted judge for ``behaviour`` (the server counts
    tries per prompt: another ``system`` text starts a new count)."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"답변: 좋은 답 S:{behaviour}"},
    ]


@pytest.fixture
def server(scripted_judge) -> Iterator:
    with scripted_judge(hang=5.0) as judge:
        yield judge


class Client:
    """A client on the scripted server with recorded sleeps; ``tries`` counts server requests."""

    def __init__(self, server: Any, cache: Path | None, **settings: float) -> None:
        self.server = server
        self.sleeps: list[float] = []
        options = {"timeout": 5.0, "max_retries": 3, "backoff_base": 0.5, **settings}
        self.client = JudgeClient(
            ClientSettings(base_url=server.base_url, model="scripted-judge", **options),
            "sk-test",
            ReplyCache(cache),
            sleep=self.sleeps.append,
            rng=TopOfRange(),  # type: ignore[arg-type]
        )

    def ask(self, behaviour: str, **index: int):
        before = self.server.requests
        reply = self.client.ask(messages(behaviour), SAMPLING, {**INDEX, **index})
        assert reply.requests == self.server.requests - before  # the reply's own count is true
        return reply


@pytest.fixture
def client(server: Any, tmp_path: Path) -> Iterator[Client]:
    made = Client(server, tmp_path / "cache.sqlite")
    yield made
    made.client.close()


def test_a_reply_costs_one_request_and_carries_its_tokens(client: Client) -> None:
    reply = client.ask("plain")
    assert reply.text.endswith("점수: 8") and not reply.cached
    assert (reply.requests, reply.retries) == (1, 0)
    assert (reply.prompt_tokens, reply.completion_tokens) == (100, 20)
    assert client.sleeps == []
    stats = client.client.stats
    assert (stats.requests, stats.prompt_tokens, stats.completion_tokens) == (1, 100, 20)


def test_a_second_ask_comes_from_the_cache_without_a_request(client: Client) -> None:
    first = client.ask("plain")
    again = client.ask("plain")
    assert again.cached and (again.requests, again.retries) == (0, 0)
    assert (again.text, again.prompt_tokens, again.completion_tokens) == (
        first.text,
        first.prompt_tokens,
        first.completion_tokens,
    )
    assert client.client.stats.cache_hits == 1 and client.client.stats.requests == 1


def test_another_ask_index_is_another_request(client: Client) -> None:
    client.ask("plain")
    assert not client.ask("plain", ask=1).cached  # a deliberate re-ask is not a cache hit


def test_server_errors_are_retried_with_exponential_backoff(client: Client) -> None:
    reply = client.ask("error500")  # 500, 500, then an answer
    assert reply.text.endswith("점수: 4") and (reply.requests, reply.retries) == (3, 2)
    assert client.sleeps == [0.5, 1.0]  # base * 2**attempt, at the top of the jitter
    assert client.client.stats.retries == 2


def test_backoff_is_capped(server: Any, tmp_path: Path) -> None:
    capped = Client(server, None, backoff_base=1.0, backoff_max=1.5, max_retries=4)
    with pytest.raises(CallFailed):
        capped.ask("always500")
    assert capped.sleeps == [1.0, 1.5, 1.5, 1.5]


def test_retry_after_is_the_least_wait(client: Client) -> None:
    reply = client.ask("ratelimit")  # 429 with Retry-After: 1, then an answer
    assert reply.requests == 2
    (wait,) = client.sleeps
    assert wait == pytest.approx(1.0 + 0.1 * 0.5)  # what was asked plus a tenth of the jitter


def test_retry_after_beyond_the_limit_fails_the_call_at_once(client: Client) -> None:
    with pytest.raises(CallFailed, match="Retry-After 3600s") as failed:
        client.ask("ratelimit-long")
    assert failed.value.requests == 1 and client.sleeps == []


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("hang", "timeout"), ("malformed", "malformed"), ("dropped", "connection")],
)
def test_transient_failures_are_retried(
    server: Any, tmp_path: Path, behaviour: str, reason: str
) -> None:
    quick = Client(server, None, timeout=1.5)  # the scripted hang lasts 5 s
    reply = quick.ask(behaviour)
    assert reply.text.endswith("점수: 4") and (reply.requests, reply.retries) == (2, 1)
    assert quick.sleeps == [0.5]
    # With no retries left the same failure is the call's error, named.
    once = Client(server, None, timeout=1.5, max_retries=0)
    with pytest.raises(CallFailed, match=reason):
        once.client.ask(messages(behaviour, "다시 평가하라."), SAMPLING, INDEX)


def test_retries_exhausted_is_an_error_and_is_not_cached(client: Client) -> None:
    for _ in range(2):
        before = client.server.requests
        with pytest.raises(CallFailed, match="gave up after 4 requests") as failed:
            client.ask("always500")
        assert failed.value.requests == 4 == client.server.requests - before
    assert client.client.stats.cache_hits == 0


def test_a_refused_prompt_is_not_retried(client: Client) -> None:
    with pytest.raises(CallFailed, match="HTTP 400") as failed:
        client.ask("badrequest")
    assert failed.value.requests == 1 and client.sleeps == []


def test_a_refused_key_stops_the_run(client: Client) -> None:
    with pytest.raises(JudgeError, match="HTTP 401") as failed:
        client.ask("unauthorized")
    assert "sk-test" not in str(failed.value)


def test_the_request_budget_spaces_requests() -> None:
    budget = RateBudget(2, window=0.3)
    start = time.monotonic()
    for _ in range(3):
        budget.acquire()
    assert time.monotonic() - start >= 0.3 - 0.01  # the third waited for the window to pass


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # milliseconds win
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_header_forms(headers: dict | None, seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert retry_after({"retry-after": format_datetime(when, usegmt=True)}) == pytest.approx(
        30, abs=2
    )
    past = datetime.now(timezone.utc) - timedelta(seconds=30)
    assert retry_after({"retry-after": format_datetime(past, usegmt=True)}) == 0.0
