"""``fusebench generate`` with vLLM, without a GPU: the ``vllm serve`` command line, the one API
key of server and client, the sampling fields, and the per-request length cap against a
server that plays vLLM (reports ``max_model_len`` in /v1/models, counts at /tokenize, answers
HTTP 400 past its context). ``--serve vllm`` runs a stand-in ``vllm`` executable
(tests/harness/fake_vllm.py: the scripted server on the port it is given), so the harness's
start, health wait, requests and stop are the real ones; vLLM itself is run by
scripts/gpu_smoke.sh."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.generate import capped_max_tokens, request_fields
from harness.serve import VLLMOptions, child_env, command

REPO = Path(__file__).resolve().parents[2]


def prompt_tokens(messages: list[dict]) -> int:  # the scripted model's tokenizer
    return sum(len(m["content"]) for m in messages)


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``vllm`` on PATH that runs tests/harness/fake_vllm.py; returns its record file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "vllm"
    script.write_text(
        f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" "{REPO}/tests/harness/fake_vllm.py" "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    record = tmp_path / "vllm-record.json"
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(record))
    return record


def test_vllm_serve_command_line(fake_vllm: Path) -> None:
    options = VLLMOptions(
        tensor_parallel_size=2, max_model_len=4096, dtype="bfloat16", gpu_memory_utilization=0.85
    )
    cmd = command("vllm", "/m/x", 8123, Path("t.jinja"), True, "cpu", options)
    assert Path(cmd[0]).name == "vllm"
    assert cmd[1:] == [
        "serve",
        "/m/x",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--served-model-name",
        "/m/x",
        "--generation-config",
        "vllm",
        "--tensor-parallel-size",
        "2",
        "--max-model-len",
        "4096",
        "--dtype",
        "bfloat16",
        "--gpu-memory-utilization",
        "0.85",
        "--chat-template",
        "t.jinja",
        "--trust-remote-code",
    ]
    bare = command("vllm", "m", 1, None, False, "cpu")
    assert bare[-2:] == ["--generation-config", "vllm"]  # vLLM's defaults for the rest


def test_one_key_for_server_and_client() -> None:
    inherited = {"VLLM_API_KEY": "stray", "PATH": "/bin"}
    assert child_env("vllm", "k1", inherited)["VLLM_API_KEY"] == "k1"
    assert "VLLM_API_KEY" not in child_env("vllm", None, inherited)
    assert child_env("transformers", None, inherited) == inherited


def test_sampling_fields() -> None:
    assert request_fields("transformers", 8, ["</s>"]) == {
        "temperature": 0.0,
        "max_tokens": 8,
        "stop": ["</s>"],
    }
    vllm = request_fields("vllm", 8, [])
    assert vllm["stop"] is None and vllm["top_p"] == 1.0
    assert vllm["extra_body"] == {
        "top_k": -1,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "skip_special_tokens": True,
    }


def test_max_tokens_cap() -> None:
    from harness.generate import QuestionFailed

    assert capped_max_tokens(1024, None, None) == 1024  # the server does not say
    assert capped_max_tokens(1024, 2048, 1500) == 548
    assert capped_max_tokens(1024, 4096, 100) == 1024
    assert capped_max_tokens(1024, 2048, None) == 1024
    with pytest.raises(QuestionFailed, match="the prompt's 2048 tokens fill the model's 2048"):
        capped_max_tokens(1024, 2048, 2048)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--serve", "transformers", "--tensor-parallel-size", "2", "--dtype", "bfloat16"],
            "--tensor-parallel-size, --dtype: options of --serve vllm",
        ),
        (["--base-url", "http://127.0.0.1:9/v1", "--max-model-len", "99"], "--max-model-len"),
        (["--serve", "vllm", "--dtype", "fp8"], "--dtype fp8: expected one of auto, float16"),
    ],
)
def test_vllm_options_elsewhere_are_refused(
    tmp_path: Path, capsys, args: list[str], expected: str
) -> None:
    code = main(["generate", "m", *args, "--output", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_generate_serve_vllm_caps_each_request_to_the_context(
    zoo: Path, tmp_path: Path, fake_vllm: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Every engine option reaches ``vllm serve``; the inherited VLLM_API_KEY is the one key
    of both sides (the scripted server answers 401 to any other); every request asks for what
    is left of the 1200-token context after its prompt (LogicKor: the model length); prompts
    that fill it fail their question with the reason, the run goes on; the server is stopped."""
    monkeypatch.setenv("VLLM_API_KEY", "vllm-key-DO-NOT-LEAK-5f1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("FAKE_VLLM_MAX_MODEL_LEN", "1200")
    run = tmp_path / "run"
    code = main(
        [
            "generate",
            str(zoo / "tiny-llama"),
            "--serve",
            "vllm",
            "--tensor-parallel-size",
            "2",
            "--max-model-len",
            "1200",
            "--dtype",
            "bfloat16",
            "--gpu-memory-utilization",
            "0.5",
            "--startup-timeout",
            "60",
            "--strategies",
            "default",
            "--max-tokens",
            "4096",
            "--output",
            str(run),
            "--quiet",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    record = json.loads(fake_vllm.read_text("utf-8"))
    argv = " ".join(record["argv"])
    for flag in (
        "--tensor-parallel-size 2",
        "--max-model-len 1200",
        "--dtype bfloat16",
        "--gpu-memory-utilization 0.5",
        "--generation-config vllm",
    ):
        assert flag in argv
    assert record["api_key"] == "vllm-key-DO-NOT-LEAK-5f1"
    rows = [
        json.loads(line) for line in (run / "logickor" / "default.jsonl").open(encoding="utf-8")
    ]
    assert len(rows) == 42
    failed = {row["id"]: row["error"] for row in rows if "error" in row}
    assert 0 < len(failed) < 42
    for error in failed.values():
        assert re.fullmatch(
            r"turn [12]: the prompt's \d+ tokens fill the model's 1200-token context", error
        ), error
    generation = json.loads((run / "logickor" / "generation.json").read_text("utf-8"))
    assert generation["strategies"]["default"]["failed"] == {str(k): v for k, v in failed.items()}
    assert f"{len(failed)} failed" in printed.out
    port = int(re.search(r"--port (\d+)", argv).group(1))
    assert not _listening(port)
    for path in run.rglob("*"):
        if path.is_file():
            assert b"DO-NOT-LEAK" not in path.read_bytes(), path


def test_http_400_for_the_length_fails_the_question_not_the_run(
    tmp_path: Path, scripted_judge, capsys
) -> None:
    """Without /tokenize, max_tokens is capped at the model length and the server's 400 for
    prompt + max_tokens over it is recorded as that question's failure."""
    with scripted_judge(behaviour="plain", max_model_len=1100, tokenize=False) as server:
        code = main(
            [
                "generate",
                "scripted-model",
                "--base-url",
                server.base_url,
                "--strategies",
                "default",
                "--max-tokens",
                "4096",
                "--output",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert {body["max_tokens"] for body in server.bodies} == {1100}
    rows = [
        json.loads(line)
        for line in (tmp_path / "run" / "logickor" / "default.jsonl").open(encoding="utf-8")
    ]
    assert len(rows) == 42 and all("error" in row for row in rows)
    assert rows[0]["error"].startswith(
        "turn 1: HTTP 400: Error code: 400 - This model's maximum context length is 1100 tokens."
    ), rows[0]["error"]
    assert rows[0]["outputs"] == ["", ""]
    assert "42 failed" in printed.out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux parent-death signal")
def test_the_served_model_stops_when_generate_is_killed(
    zoo: Path, tmp_path: Path, fake_vllm: Path
) -> None:
    """``generate --serve`` killed with SIGKILL (it cannot stop its server itself): the kernel
    tells the server, which would otherwise keep its port and GPU memory for good."""
    import signal
    import subprocess
    import time

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from harness.cli import main; sys.exit(main())",
            "generate",
            str(zoo / "tiny-llama"),
            "--serve",
            "vllm",
            "--startup-timeout",
            "60",
            "--strategies",
            "default",
            "--output",
            str(tmp_path / "run"),
            "--quiet",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = None
    try:
        deadline = time.monotonic() + 120
        while server is None:
            assert parent.poll() is None and time.monotonic() < deadline, "no server started"
            try:
                server = json.loads(fake_vllm.read_text("utf-8"))["pid"]
            except (OSError, ValueError):
                time.sleep(0.05)
        assert _alive(server)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(server), "the model server outlived the killed generate"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if server is not None and _alive(server):
            os.kill(server, signal.SIGKILL)
