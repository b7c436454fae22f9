"""One judge call: the ``openai`` client, a persistent cache, retries and a request budget.

Retries are done here, with the client's own retries off (``max_retries=0``): the client's
backoff is capped at 8 s, ignores a Retry-After above 60 s, and cannot tell us how many
attempts a reply cost or share the per-minute budget, all of which judging needs.
Transient failures (429, 5xx, timeouts, dropped connections, a 200 whose body is not a chat
completion) are retried with exponential backoff and full jitter, waiting at least what a
Retry-After header asks. Failures the user must fix (bad key, unknown model or URL) stop the
run with a ``JudgeError``; a 400 for one prompt is that judgment's error. An endpoint that
cannot be connected to at all (refused, unreachable) for ``max_connection_failures`` calls in a
row, each after all its retries, stops the run with ``EndpointUnreachable``: otherwise every
judgment would wait through its retries to become an error.
"""

from __future__ import annotations

import collections
import email.utils
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai

from judges.cache import Cached, ReplyCache, cache_key, endpoint_of
from judges.errors import EndpointUnreachable, JudgeError
from judges.redact import Redactor
from judges.settings import ClientSettings


@dataclass
class Reply:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cached: bool
    requests: int  # HTTP requests this reply cost (0 when cached)
    retries: int


def public_url(url: str) -> str:
    """The URL without user:password or query, for manifests and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def failed_to_connect(err: BaseException) -> bool:
    """Whether a request never reached the server (refused, unreachable, no route, DNS, a
    connect timeout), as opposed to one the server accepted and then dropped or let time out.
    The HTTP library's exception is the cause (httpx or httpx2: matched by name)."""
    return type(err.__cause__).__name__ in ("ConnectError", "ConnectTimeout")


class CallFailed(Exception):
    """Retries exhausted or a request the endpoint refuses: that judgment's status is error."""

    def __init__(self, reason: str, requests: int) -> None:
        super().__init__(reason)
        self.requests = requests


class RateBudget:
    """At most ``per_window`` requests in any ``window`` seconds (sliding window)."""

    def __init__(self, per_window: int, window: float = 60.0) -> None:
        self.per_window, self.window = per_window, window
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.per_window:
                    self._sent.append(now)
                    return
                wait = self.window - (now - self._sent[0])
            time.sleep(max(wait, 0.01))


def retry_after(headers: Any) -> float | None:
    """Seconds a response asks us to wait (``retry-after-ms``, ``retry-after`` in seconds or
    as an HTTP date), or None."""
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)
_TRANSIENT_STATUS = (openai.RateLimitError, openai.InternalServerError, openai.ConflictError)


class JudgeClient:
    """Chat completions for the judge, through the cache. Thread-safe."""

    def __init__(
        self,
        settings: ClientSettings,
        api_key: str | None,
        cache: ReplyCache,
        *,
        sleep: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        # Part of every cache key: the same model name elsewhere is another judge.
        self.endpoint = endpoint_of(settings.base_url)
        # The key lives only inside the client object; it is never logged or written, and
        # every text the client hands out (errors, replies) is passed through ``redact``.
        self.redact = Redactor(api_key, settings.base_url)
        self._connect_timeout = min(settings.connect_timeout, settings.timeout)
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=api_key or "none",
            max_retries=0,
            timeout=openai.Timeout(settings.timeout, connect=self._connect_timeout),
        )
        self._budget = (
            RateBudget(settings.requests_per_minute) if settings.requests_per_minute else None
        )
        # Backoffs wait on ``_stop`` (unless a test injects ``sleep``), so that a stopped run
        # does not sit out the other calls' backoffs.
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._unreached = 0  # calls in a row that gave up without connecting
        self._down: str | None = None  # why the run stops, once it does
        self._unreached_lock = threading.Lock()
        self.shown_url = public_url(settings.base_url)  # for messages
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.stats = _Stats()

    def close(self) -> None:
        self._client.close()

    def _backoff(self, attempt: int, asked: float | None) -> float:
        with self._rng_lock:
            jitter = self._rng.uniform(
                0, min(self.settings.backoff_max, self.settings.backoff_base * 2**attempt)
            )
        if asked is None:
            return jitter
        # Wait what the server asked, plus a little jitter so waiters do not return together.
        return asked + jitter * 0.1

    def _reached(self) -> None:
        """A request reached the server (whatever came back: a reply, an HTTP error, a dropped
        connection, a read timeout): the endpoint is up, the count of calls in a row that
        could not connect starts again."""
        with self._unreached_lock:
            self._unreached = 0

    def _check(self) -> None:
        if self._down is not None:
            raise EndpointUnreachable(self._down)

    def _unreachable(self, cause: str, requests: int) -> Exception:
        """The error of a call that gave up without connecting: this judgment's, or, once
        ``max_connection_failures`` such calls came in a row, the run's."""
        limit = self.settings.max_connection_failures
        with self._unreached_lock:
            self._unreached += 1
            if self._unreached >= limit and self._down is None:
                self._down = self.redact(
                    f"{self.shown_url}: {self._unreached} consecutive requests failed to connect "
                    f"({cause}), each after {requests} tries; the endpoint is down or its URL "
                    "is wrong"
                )
                self._stop.set()
            if self._down is not None:
                return EndpointUnreachable(self._down)
        return CallFailed(
            f"connection failed ({cause}); gave up after {requests} requests", requests
        )

    def ask(
        self, messages: list[dict[str, str]], sampling: dict[str, Any], index: dict[str, int]
    ) -> Reply:
        """The judge's reply to ``messages``; ``index`` (repeat, ask) separates deliberate
        re-asks of the same prompt in the cache."""
        messages = sendable(messages)
        key = cache_key(
            self.settings.model, messages, {**sampling, **index}, endpoint=self.endpoint
        )
        if (hit := self.cache.get(key)) is not None:
            self.stats.add(cache_hits=1)
            return Reply(hit.reply, hit.prompt_tokens, hit.completion_tokens, True, 0, 0)
        for attempt in range(self.settings.max_retries + 1):
            self._check()
            if self._budget is not None:
                self._budget.acquire()
            requests = attempt + 1
            self.stats.add(requests=1)
            asked: float | None = None
            unreached = False
            try:
                response = self._client.chat.completions.create(
                    model=self.settings.model,
                    messages=messages,
                    **sampling,  # type: ignore[arg-type]
                )
                text, usage = _content(response)
                text = self.redact(text)
            except openai.APIConnectionError as err:
                # Before the status errors' clauses: none of these carries a response.
                unreached = failed_to_connect(err)
                cause = (
                    f"no connection within {self._connect_timeout:g}s"
                    if type(err.__cause__).__name__ == "ConnectTimeout"
                    else _short(err.__cause__ or err, self.redact) or type(err).__name__
                )
                reason = (
                    f"timeout after {self.settings.timeout:g}s"
                    if isinstance(err, openai.APITimeoutError) and not unreached
                    else f"connection failed ({cause})"
                )
            except _FATAL as err:
                raise JudgeError(
                    self.redact(
                        f"judge endpoint {self.settings.base_url} refused the request "
                        f"(HTTP {err.status_code}): {_short(err, self.redact)}"
                    )
                ) from None
            except _TRANSIENT_STATUS as err:
                asked = retry_after(err.response.headers)
                reason = f"HTTP {err.status_code}"
                if asked is not None and asked > self.settings.retry_after_max:
                    self._reached()
                    raise CallFailed(f"{reason}, Retry-After {asked:.0f}s", requests) from None
            except openai.APIStatusError as err:  # 400, 422, ...: this prompt, not the endpoint
                self._reached()
                raise CallFailed(
                    f"HTTP {err.status_code}: {_short(err, self.redact)}", requests
                ) from None
            except (openai.APIResponseValidationError, json.JSONDecodeError, _Malformed) as err:
                reason = f"malformed response ({_short(err, self.redact)})"
            else:
                self._reached()
                self.cache.put(key, self.settings.model, Cached(text, usage[0], usage[1]), _now())
                self.stats.add(prompt_tokens=usage[0] or 0, completion_tokens=usage[1] or 0)
                return Reply(text, usage[0], usage[1], False, requests, attempt)
            if not unreached:
                self._reached()
            if attempt == self.settings.max_retries:
                if unreached:
                    raise self._unreachable(cause, requests)
                raise CallFailed(f"{reason}; gave up after {requests} requests", requests)
            self.stats.add(retries=1)
            self._sleep(self._backoff(attempt, asked))
        raise AssertionError("unreachable")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def sendable(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` as an HTTP body can carry them: a lone surrogate (real generations hold
    ``"\\ud800"``), which UTF-8 cannot encode and the client would crash on, becomes U+FFFD,
    what a UTF-8 decoder shows for it anyway. The files being judged keep it as written; the
    cache key is of what is sent, the text the reply depends on."""
    return [
        {k: _LONE_SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for k, v in m.items()}
        for m in messages
    ]


class _Malformed(Exception):
    pass


def _content(response: Any) -> tuple[str, tuple[int | None, int | None]]:
    choices = getattr(response, "choices", None)
    if not choices:
        raise _Malformed("no choices")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str):
        raise _Malformed("no message content")
    usage = getattr(response, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None) if usage is not None else None
    completion = getattr(usage, "completion_tokens", None) if usage is not None else None
    return text, (prompt, completion)


def _short(err: BaseException, redact: Redactor) -> str:
    """The error on one line, at most 200 characters, secrets masked before the cut (a key
    cut in half would no longer be found)."""
    return " ".join(redact(str(err)).split())[:200]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class _Stats:
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
