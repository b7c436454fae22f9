"""The GPU smoke test of the vLLM paths (``scripts/gpu_smoke.sh`` runs this file; marker
``gpu``: skipped without CUDA, and without vllm unless FUSEBENCH_GPU_SMOKE=1, where a
missing vllm fails). Each check is one test, so pytest prints one line per check. Every
vLLM run is a process of its own (the CLI, or tests/gpu/parity_worker.py): vLLM does not
give its GPU memory back inside a process, and each check needs it.

NEVER RUN on the development machine (no GPU); written to be run as it is on one."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu
REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())"]


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def _gpu_memory_used_mib() -> int:
    out = _run("nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits")
    return sum(int(v) for v in out.stdout.split())


def test_vllm_imports() -> None:
    import vllm

    print(f"vllm {vllm.__version__}")


def test_extraction_parity_with_hf(zoo: Path) -> None:
    """k = 21 (over vLLM's default max_logprobs of 20); fp32; top-k ids equal up to ties,
    log-probabilities, gold NLL and the last position within 1e-3."""
    done = _run(sys.executable, "-m", "tests.gpu.parity_worker", str(zoo / "tiny-llama"))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ids"] == 0 and report["last_ids"] == 0, report
    assert report["lp"] < 1e-3 and report["nll"] < 1e-3 and report["last_lp"] < 1e-3, report


def test_over_long_max_length_is_refused_in_one_line(tmp_path: Path, zoo: Path) -> None:
    import yaml

    (tmp_path / "c.jsonl").write_text('{"text": "안녕하세요"}\n', encoding="utf-8")
    config = {
        "work_dir": "work",
        "target": {"name": "tiny-llama", "path": str(zoo / "tiny-llama")},
        "sources": [{"name": "tiny-mistral", "path": str(zoo / "tiny-mistral")}],
        "corpus": {"path": "c.jsonl"},
        "extract": {"backend": "vllm", "k": 21, "max_length": 2048},
    }
    (tmp_path / "fuse.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    done = _run(*CLI, "fuse", "extract", str(tmp_path / "fuse.yaml"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert "set extract.max_length to 1023 at most" in lines[0]


def test_eval_vllm_matches_hf(tmp_path: Path, zoo: Path) -> None:
    accuracy = {}
    for backend in ("hf", "vllm"):
        out = tmp_path / backend
        done = _run(
            *CLI,
            "eval",
            str(zoo / "tiny-llama"),
            "--backend",
            backend,
            "--tasks",
            "nsmc",
            "--limit",
            "20",
            "--dtype",
            "float32",
            "--output",
            str(out),
            "--quiet",
        )
        assert done.returncode == 0, done.stderr[-2000:]
        from reports import rundir

        accuracy[backend] = rundir.read_results(out, 0)["results"]["nsmc"]["acc,none"]
    assert abs(accuracy["vllm"] - accuracy["hf"]) <= 0.05, accuracy


def test_generate_serve_vllm_answers_and_leaves_nothing_behind(tmp_path: Path, zoo: Path) -> None:
    before = _gpu_memory_used_mib()
    run = tmp_path / "run"
    done = _run(
        *CLI,
        "generate",
        str(zoo / "tiny-llama"),
        "--serve",
        "vllm",
        "--strategies",
        "default",
        "--max-tokens",
        "8",
        "--dtype",
        "float32",
        "--gpu-memory-utilization",
        "0.3",
        "--startup-timeout",
        "300",
        "--output",
        str(run),
        "--quiet",
        timeout=480,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(x) for x in (run / "logickor" / "default.jsonl").open(encoding="utf-8")]
    assert len(rows) == 42 and any(row["outputs"][0] for row in rows if "error" not in row)
    log = (run / "logickor" / "server.log").read_text("utf-8", errors="replace")
    ports = set(re.findall(r"127\.0\.0\.1:(\d+)", log))
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(port))) != 0, f"port {port} still open"
    assert _run("pgrep", "-f", "vllm serve").returncode == 1, "a vllm serve process is left"
    assert _gpu_memory_used_mib() <= before + 256, "GPU memory not given back"
