"""Fixtures the `fuse run` tests share."""

from __future__ import annotations

import pytest

JUDGE_ENV = ("FUSEBENCH_JUDGE_BASE_URL", "FUSEBENCH_JUDGE_MODEL", "FUSEBENCH_JUDGE_API_KEY")


@pytest.fixture
def no_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    """No judge configured: `fuse run` skips LogicKor, whatever the caller's environment."""
    for name in JUDGE_ENV:
        monkeypatch.delenv(name, raising=False)
