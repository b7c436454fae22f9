"""Fixtures for the fusion tests: a small real fused-targets store for a tiny target."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fusion.train_fixtures import build_fused_store, korean_rows


@pytest.fixture(scope="session")
def fused_store(zoo: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-llama's fused targets over 24 NSMC reviews (top-4 of a teacher in its vocabulary)."""
    out = tmp_path_factory.mktemp("fused") / "fused"
    return build_fused_store(zoo / "tiny-llama", out, korean_rows(data_root, 24))
