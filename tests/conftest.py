"""Shared fixtures: the Hub off, HF caches in a temporary folder, the tiny-model zoo built once
into pytest's cache; and the fixture modules every test directory may use."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before any Hugging Face import: tests never touch the network or the user's caches.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="fusebench-hf-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent

# Fixture modules (helpers reach tests as fixtures, never by importing from tests).
pytest_plugins = [
    "tests.fusion.cli",
    "tests.fusion.fuse_fixtures",
    "tests.fusion.train_fixtures",
    "tests.judges.scripted_server",
    "tests.judges.pairwise_judges",
]


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Each test gets the environment it started with back: an in-process training sets a
    one-rank rendezvous (RANK, MASTER_PORT, ...) that a later test's child must not inherit."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def data_root() -> Path:
    from tasks.datadir import data_dir

    root = data_dir()
    if root is None:
        pytest.fail("no data directory: set FUSEBENCH_DATA_DIR or put shared/data beside the repo")
    return root


@pytest.fixture(scope="session")
def zoo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick zoo, built once into pytest's cache directory and reused by later sessions
    (deterministic, keyed by the zoo version); with the cache provider off (``-p
    no:cacheprovider``), built into this session's temporary directory. Never into the checkout."""
    from fusion.zoo import ZOO_VERSION, cached_zoo

    cache = getattr(request.config, "cache", None)
    root = (
        cache.mkdir("fusebench-zoo")
        if cache is not None
        else tmp_path_factory.mktemp("fusebench-zoo")
    )
    return cached_zoo(root / f"zoo-{ZOO_VERSION}")


@pytest.fixture
def small_demo(monkeypatch: pytest.MonkeyPatch) -> tuple:
    """The demo zoo's recipes (fusion.zoo.DEMO_SPECS) at a test's size: the same code, tiny
    models, step counts and tokenizer corpus, so that building it takes seconds."""
    import dataclasses

    from fusion import zoo

    small = tuple(
        dataclasses.replace(
            spec,
            hidden_size=32,
            num_layers=1,
            intermediate_size=64,
            training=dataclasses.replace(
                spec.training,
                steps=30,
                finetune_steps=min(spec.training.finetune_steps, 30),
                batch_size=8,
                seq_len=32,
                learning_rate=1e-2,
                held_out_max_rows=20,
            ),
        )
        for spec in zoo.DEMO_SPECS
    )
    monkeypatch.setitem(zoo.ZOOS, "demo", small)
    monkeypatch.setattr(zoo, "DEMO_CORPUS_MIX", {"general": 20, "unsmile": 10})
    full = zoo.tokenizer_corpus  # tokenizers from a tenth of the text: seconds, not minutes
    monkeypatch.setattr(zoo, "tokenizer_corpus", lambda kind: full(kind)[::10])
    return small


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests need CUDA and vLLM; without either they skip with the reason, except under
    scripts/gpu_smoke.sh (FUSEBENCH_GPU_SMOKE=1), where nothing is skipped: a missing GPU or
    vllm fails the checks that need it, so the script never passes by skipping."""
    import importlib.util

    import torch

    if os.environ.get("FUSEBENCH_GPU_SMOKE") == "1":
        return
    reason = None
    if not torch.cuda.is_available():
        reason = "needs a CUDA GPU (none on this machine)"
    elif importlib.util.find_spec("vllm") is None:
        reason = "needs vllm (pip install 'fusebench[vllm]' in its own environment)"
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
