"""How judging runs, with its defaults: the one place they are written.

``JudgeSettings`` is what a judgment depends on (template, repeats, re-asks, sampling) and
how many run at once; ``ClientSettings`` is how the judge is called (endpoint, timeouts,
retries, request budget). ``harness.specs.JudgeRequest``, and through it the ``fusebench
judge`` options, take their defaults from here. Kept apart from ``judges.run`` and
``judges.client`` so that reading them imports no HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judges.prompts import Template


@dataclass(frozen=True)
class JudgeSettings:
    template: str = Template.logickor.value
    repeats: int = 1
    max_asks: int = 3  # asks per repeat while the reply has no valid score
    temperature: float = 0.0
    max_tokens: int | None = None
    concurrency: int = 8

    def sampling(self) -> dict[str, Any]:
        out: dict[str, Any] = {"temperature": self.temperature}
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        return out


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    model: str
    timeout: float = 120.0  # seconds per request
    # Seconds to open a connection (at most ``timeout``): a host that drops connection attempts
    # fails each try in this time, not in ``timeout``, so that a dead endpoint is seen soon.
    connect_timeout: float = 10.0
    max_retries: int = 6  # transient failures retried per call
    backoff_base: float = 1.0  # seconds; attempt k waits up to base * 2**k (full jitter)
    backoff_max: float = 60.0
    retry_after_max: float = 600.0  # a longer Retry-After is an error, not a 10-minute nap
    requests_per_minute: int | None = None
    # Calls in a row that gave up without ever connecting (refused, unreachable, no route):
    # then the endpoint is down, not busy, and the run stops instead of filling every
    # judgment with an error.
    max_connection_failures: int = 3
