"""Backends: the registry, vLLM's clear absence on CPU machines, response-cache keys."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness.backends import BackendOptions, build_backend
from harness.cli import main
from harness.errors import BackendUnavailable, HarnessError
from harness.models import cache_key, resolve_model
from reports import rundir


def test_unknown_backend() -> None:
    with pytest.raises(HarnessError, match="unknown backend 'tgi'; known: hf, hf-lm-eval, vllm"):
        build_backend("tgi", "m", BackendOptions())


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_is_a_clear_error(zoo: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(BackendUnavailable, match=r"pip install 'fusebench\[vllm\]'"):
        build_backend("vllm", str(zoo / "tiny-llama"), BackendOptions())
    code = main(
        [
            "eval",
            str(zoo / "tiny-llama"),
            "--backend",
            "vllm",
            "--tasks",
            "nsmc",
            "--limit",
            "2",
            "--output",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2 and "needs vLLM and a CUDA GPU" in capsys.readouterr().err


def test_vllm_model_arguments() -> None:
    """lm-eval's VLLM gets batch_size 'auto' (vLLM schedules every request itself), whatever
    --batch-size says, and the parallelism and length options."""
    from harness.backends.vllm import vllm_kwargs

    options = BackendOptions(
        batch_size=8,
        dtype="bfloat16",
        max_length=1024,
        revision="abc",
        extra={"tensor_parallel_size": 2, "data_parallel_size": 1},
    )
    assert vllm_kwargs("m", options) == {
        "pretrained": "m",
        "batch_size": "auto",
        "dtype": "bfloat16",
        "trust_remote_code": False,
        "tensor_parallel_size": 2,
        "data_parallel_size": 1,
        "gpu_memory_utilization": 0.9,
        "revision": "abc",
        "max_model_len": 1024,
    }


def test_the_manifest_records_what_vllm_gets() -> None:
    """An eval manifest names the batch size the backend really used: "auto" for vLLM, the
    number for the hf backends."""
    from harness.evaluate import recorded_backend_args
    from harness.specs import EvalSpec

    assert recorded_backend_args(EvalSpec(model="m", backend="vllm"))["batch_size"] == "auto"
    assert recorded_backend_args(EvalSpec(model="m", backend="hf"))["batch_size"] == 8


def test_cache_key_follows_the_weights(zoo: Path, tmp_path: Path) -> None:
    a = resolve_model(str(zoo / "tiny-llama"))
    b = resolve_model(str(zoo / "tiny-gpt2"))
    assert cache_key(a, "hf", "auto") != cache_key(b, "hf", "auto")
    assert cache_key(a, "hf", "auto") != cache_key(a, "hf", "bfloat16")
    assert cache_key(a, "hf", "auto") == cache_key(
        resolve_model(str(zoo / "tiny-llama")), "hf", "auto"
    )


def test_response_cache_is_per_model(zoo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for name in ("tiny-llama", "tiny-gpt2"):
        assert (
            main(
                [
                    "eval",
                    str(zoo / name),
                    "--tasks",
                    "nsmc",
                    "--limit",
                    "3",
                    "--cache-dir",
                    str(cache),
                    "--output",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2  # one cache per model
    llama = rundir.read_results(tmp_path / "tiny-llama", 0)["results"]["nsmc"]
    # A second run of the same model reads its own cache and gets the same numbers.
    assert (
        main(
            [
                "eval",
                str(zoo / "tiny-llama"),
                "--tasks",
                "nsmc",
                "--limit",
                "3",
                "--cache-dir",
                str(cache),
                "--output",
                str(tmp_path / "again"),
            ]
        )
        == 0
    )
    assert rundir.read_results(tmp_path / "again", 0)["results"]["nsmc"] == llama
