"""``fusebench generate`` against a real ``transformers serve`` started by the harness, with a
tiny zoo model; resume after a SIGTERM; ``fusebench judge`` against the same kind of server
(wire compatibility: a tiny model's replies hold no score, so they must be ``unparsable``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.serve import serve

REPO = Path(__file__).resolve().parents[2]
MODEL = "tiny-llama"  # its chat template is '### User:' style, eos '</s>'
FAST = [
    "--max-tokens",
    "8",
    "--stop",
    "</s>",
    "--quiet",
]  # one stop string: each costs a vocab scan


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_generate_all_questions_then_resume_after_sigterm(
    zoo: Path, data_root: Path, tmp_path: Path
) -> None:
    questions = _rows(data_root / "logickor" / "questions.jsonl")
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-c",
        "import sys; from harness.cli import main; sys.exit(main())",
        "generate",
        str(zoo / MODEL),
        "--serve",
        "transformers",
        "--strategies",
        "default",
        "--output",
        str(run),
        *FAST,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    part = run / "logickor" / ".default.jsonl.part"
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if part.is_file() and len(part.read_text("utf-8").splitlines()) >= 5:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGTERM)  # a scheduler stopping the job
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    finished = _rows(part)
    assert len(finished) >= 5 and not (run / "logickor" / "default.jsonl").exists()
    # The server the harness started is gone (its log names its port).
    log = (run / "logickor" / "server.log").read_text("utf-8", errors="replace")
    port = int(log.split("http://127.0.0.1:")[1].split()[0].rstrip(")"))
    assert not _listening(port)
    # Simulate a kill -9 during a write: a torn last line.
    with part.open("a", encoding="utf-8") as handle:
        handle.write('{"id": 999, "categ')

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (
        f"default: {42 - len(finished)} questions generated, {len(finished)} already done"
        in done.stdout
    )
    rows = _rows(run / "logickor" / "default.jsonl")
    assert [r["id"] for r in rows] == [q["id"] for q in questions]  # all 42, once, in order
    by_id = {r["id"]: r for r in rows}
    for old in finished:  # finished questions were kept, not redone
        assert by_id[old["id"]] == old
    for row, q in zip(rows, questions, strict=True):
        assert row["questions"] == q["questions"] and row["references"] == q["references"]
        assert len(row["outputs"]) == 2 and all(isinstance(o, str) for o in row["outputs"])
    assert any(o for r in rows for o in r["outputs"])  # the tiny model does say something
    assert not part.exists()
    manifest = json.loads((run / "manifest.json").read_text("utf-8"))
    assert manifest["tasks"][0]["name"] == "logickor" and manifest["model"]["sha256"]
    # A rerun has nothing left to do; other settings are refused.
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert "0 questions generated, 42 already done" in again.stdout
    changed = [*cmd[: -len(FAST)], "--max-tokens", "9", "--stop", "</s>", "--quiet"]
    refused = subprocess.run(changed, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "max_tokens" in refused.stderr


@pytest.mark.slow
def test_judge_through_transformers_serve_is_wire_compatible(
    zoo: Path, tmp_path: Path, capsys
) -> None:
    """A real OpenAI-compatible server as the judge: requests go through, replies come back,
    and since a tiny model writes no ``점수:`` line every judgment is unparsable, not 0."""
    source = tmp_path / "in" / "org" / "model" / "default.jsonl"
    source.parent.mkdir(parents=True)
    rows = [
        {
            "id": i,
            "category": "수학(Math)",
            "questions": ["1+1은?", "2+2는?"],
            "outputs": ["2", "4"],
            "references": ["2", "4"],
        }
        for i in (1, 2)
    ]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    with serve(str(zoo / "tiny-qwen2"), "transformers") as served:
        code = main(
            [
                "judge",
                str(tmp_path / "in"),
                "--output",
                str(tmp_path / "out"),
                "--base-url",
                served.base_url,
                "--judge-model",
                served.model,
                "--max-tokens",
                "8",
                "--max-asks",
                "2",
                "--concurrency",
                "2",
                "--cache",
                str(tmp_path / "cache.sqlite"),
                "--quiet",
            ]
        )
        port = int(served.base_url.split(":")[2].split("/")[0])
    assert not _listening(port)  # stopped when the block ended
    assert code == 0
    judged = _rows(tmp_path / "out" / "org" / "model" / "default.jsonl")
    for row in judged:
        for key in ("query_single", "query_multi"):
            assert row[key]["status"] == "unparsable" and row[key]["judge_score"] is None
            assert row[key]["asks"] == 2 and row[key]["tokens"]["prompt"] > 0
    assert "judgments: 0 ok, 4 unparsable, 0 error" in capsys.readouterr().out.replace("\n", " ")


def test_model_without_chat_template_is_a_clear_error(zoo: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "no-template"
    shutil.copytree(zoo / MODEL, model)
    (model / "chat_template.jinja").unlink()
    config = json.loads((model / "tokenizer_config.json").read_text("utf-8"))
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config), "utf-8")
    code = main(
        [
            "generate",
            str(model),
            "--serve",
            "transformers",
            "--strategies",
            "default",
            "--output",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "has no chat template" in err and "--chat-template" in err
    code = main(
        [
            "generate",
            str(model),
            "--serve",
            "transformers",
            "--strategies",
            "nope",
            "--output",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    assert code == 2 and "unknown nope" in capsys.readouterr().err


@pytest.mark.slow
def test_chat_template_file_is_served(zoo: Path, tmp_path: Path) -> None:
    """--chat-template FILE makes a model without a template servable: transformers serve
    renders every request with the supplied file (it has no template of its own to use)."""
    import hashlib

    from harness.generate import GenerateSpec, run_generate

    model = tmp_path / "no-template"
    shutil.copytree(zoo / MODEL, model)
    template = (model / "chat_template.jinja").read_text("utf-8")
    (model / "chat_template.jinja").unlink()
    supplied = tmp_path / "template.jinja"
    supplied.write_text(template, "utf-8")
    spec = GenerateSpec(
        model=str(model),
        output=tmp_path / "run",
        strategies=["default"],
        serve="transformers",
        chat_template=supplied,
        max_tokens=2,
        stop=["</s>"],
        quiet=True,
    )
    result = run_generate(spec)
    assert result["default"]["generated"] == 42
    record = json.loads((tmp_path / "run" / "logickor" / "generation.json").read_text("utf-8"))
    expected = hashlib.sha256(supplied.read_bytes()).hexdigest()
    assert record["settings"]["chat_template_sha256"] == expected


def test_an_error_body_that_echoes_the_key_is_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, scripted_judge
) -> None:
    """A model server whose 401 repeats the key: one line, exit 2, the key nowhere."""
    secret = "sk-generate-DO-NOT-LEAK-81c3"
    monkeypatch.setenv("FUSEBENCH_TEST_GEN_KEY", secret)
    with scripted_judge(behaviour="unauthorized-echo") as server:
        code = main(
            [
                "generate",
                "remote-model",
                "--base-url",
                server.base_url,
                "--api-key-env",
                "FUSEBENCH_TEST_GEN_KEY",
                "--strategies",
                "default",
                "--output",
                str(tmp_path / "run"),
                "--concurrency",
                "1",
                "--quiet",
            ]
        )
    printed = capsys.readouterr()
    assert server.authorizations == {f"Bearer {secret}"}
    assert code == 2 and "Incorrect API key provided: ***" in printed.err
    assert secret not in printed.out + printed.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
