"""The judge reply cache: misses, hits, what its key separates, and that it survives a reopen."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from judges import cache as reply_cache
from judges.cache import Cached, ReplyCache, default_path

ENDPOINT = "http://127.0.0.1:8000/v1"


def cache_key(model: str, messages: list, sampling: dict, endpoint: str = ENDPOINT) -> str:
    """The key at one endpoint (``test_judge_text_and_endpoints`` separates endpoints)."""
    return reply_cache.cache_key(model, messages, sampling, endpoint=endpoint)


MESSAGES = [{"role": "system", "content": "평가하라."}, {"role": "user", "content": "답변: 네"}]
SAMPLING = {"temperature": 0.0, "repeat": 0, "ask": 0}
REPLY = Cached("평가: 좋다\n점수: 8", 100, 20)


@pytest.fixture
def cache(tmp_path: Path):
    made = ReplyCache(tmp_path / "sub" / "cache.sqlite")
    yield made
    made.close()


def test_a_miss_is_none_and_a_put_is_a_hit(cache: ReplyCache) -> None:
    key = cache_key("judge", MESSAGES, SAMPLING)
    assert cache.get(key) is None
    cache.put(key, "judge", REPLY, "2025-01-01T00:00:00+00:00")
    assert cache.get(key) == REPLY


def test_unknown_token_counts_round_trip_as_none(cache: ReplyCache) -> None:
    key = cache_key("judge", MESSAGES, SAMPLING)
    cache.put(key, "judge", Cached("점수: 3", None, None), "t")
    assert cache.get(key) == Cached("점수: 3", None, None)


def test_a_put_replaces_the_earlier_reply(cache: ReplyCache) -> None:
    key = cache_key("judge", MESSAGES, SAMPLING)
    cache.put(key, "judge", REPLY, "t")
    cache.put(key, "judge", Cached("점수: 2", 5, 1), "t")
    assert cache.get(key) == Cached("점수: 2", 5, 1)


def test_replies_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    key = cache_key("judge", MESSAGES, SAMPLING)
    first = ReplyCache(path)
    first.put(key, "judge", REPLY, "t")
    first.close()
    again = ReplyCache(path)
    assert again.get(key) == REPLY
    again.close()


def test_no_path_caches_nothing(tmp_path: Path) -> None:
    off = ReplyCache(None)
    key = cache_key("judge", MESSAGES, SAMPLING)
    off.put(key, "judge", REPLY, "t")
    assert off.get(key) is None
    off.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("model", "messages", "sampling"),
    [
        ("other-judge", MESSAGES, SAMPLING),
        ("judge", [*MESSAGES[:1], {"role": "user", "content": "답변: 아니오"}], SAMPLING),
        ("judge", [{"role": "user", "content": "평가하라."}, MESSAGES[1]], SAMPLING),  # role
        ("judge", MESSAGES[1:], SAMPLING),
        ("judge", MESSAGES, {**SAMPLING, "temperature": 0.7}),
        ("judge", MESSAGES, {**SAMPLING, "max_tokens": 512}),
        ("judge", MESSAGES, {**SAMPLING, "repeat": 1}),
        ("judge", MESSAGES, {**SAMPLING, "ask": 1}),
    ],
    ids=["model", "content", "role", "turns", "temperature", "max_tokens", "repeat", "ask"],
)
def test_the_key_separates_everything_the_reply_depends_on(
    cache: ReplyCache, model: str, messages: list, sampling: dict
) -> None:
    key = cache_key("judge", MESSAGES, SAMPLING)
    cache.put(key, "judge", REPLY, "t")
    other = cache_key(model, messages, sampling)
    assert other != key and cache.get(other) is None


def test_the_key_ignores_the_order_of_settings() -> None:
    reordered = dict(reversed(list(SAMPLING.items())))
    assert cache_key("judge", MESSAGES, reordered) == cache_key("judge", MESSAGES, SAMPLING)
    assert len(cache_key("judge", MESSAGES, SAMPLING)) == 64  # a sha256, no prompt text


def test_threads_share_one_cache(cache: ReplyCache) -> None:
    keys = [cache_key("judge", MESSAGES, {**SAMPLING, "repeat": i}) for i in range(40)]

    def put(part: list[str]) -> None:
        for key in part:
            cache.put(key, "judge", Cached(key, 1, 1), "t")

    threads = [threading.Thread(target=put, args=(keys[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(cache.get(key) == Cached(key, 1, 1) for key in keys)


def test_default_path_follows_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_path() == tmp_path / "fusebench" / "judge-cache.sqlite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_path() == Path.home() / ".cache" / "fusebench" / "judge-cache.sqlite"
