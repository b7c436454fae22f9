"""``fusebench eval --nproc N``: N real ranks through fusion.launch give a one-process run's
numbers in one run directory; a killed launcher leaves no rank behind, and a rerun redoes
only what the killed run had not finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from reports import rundir

REPO = Path(__file__).resolve().parents[2]
TASKS = "kobest_boolq,kobest_hellaswag"


def _argv(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval",
        str(model),
        "--tasks",
        TASKS,
        "--limit",
        "12",
        "--batch-size",
        "3",
        "--quiet",
        "--output",
        str(out),
        *extra,
    ]


def _samples(run: Path, shots: int, task: str) -> list[dict]:
    lines = rundir.samples_path(run, shots, task).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _error_line(capsys: pytest.CaptureFixture) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_nproc_is_checked_before_anything_loads(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = zoo / "tiny-gpt2"
    assert main(_argv(model, tmp_path / "a", "--nproc", "0")) != 0
    assert "--nproc 0: expected at least 1 process" in _error_line(capsys)
    assert main(_argv(model, tmp_path / "b", "--nproc", "2", "--backend", "vllm")) != 0
    line = _error_line(capsys)
    assert "--nproc 2 does not apply to --backend vllm" in line
    assert "--tensor-parallel-size" in line and "--data-parallel-size" in line
    assert main(_argv(model, tmp_path / "c", "--nproc", "2", "--backend", "hf-lm-eval")) != 0
    assert "--nproc 2 needs --backend hf" in _error_line(capsys)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow  # three real ranks start (~40 s on two cores)
def test_two_ranks_give_one_process_numbers(zoo: Path, tmp_path: Path) -> None:
    """Against one process with one thread, as each of two ranks on a 2-core machine has:
    a CPU's float32 reductions split by thread count (one process with two threads differs
    in the last bits, ~2e-6 measured), not by the ranks, which score the same batches."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        assert main(_argv(zoo / "tiny-qwen2", tmp_path / "one")) == 0
    finally:
        torch.set_num_threads(threads)
    assert main(_argv(zoo / "tiny-qwen2", tmp_path / "two", "--nproc", "2")) == 0
    one, two = tmp_path / "one", tmp_path / "two"
    assert rundir.read_manifest(two).status == "complete"
    assert rundir.read_results(one, 0)["results"] == rundir.read_results(two, 0)["results"]
    for task in TASKS.split(","):
        a, b = _samples(one, 0, task), _samples(two, 0, task)
        assert [s["doc_id"] for s in a] == [s["doc_id"] for s in b] == list(range(12))
        for x, y in zip(a, b, strict=True):
            got = [float(r[0][0]) for r in y["resps"]]
            want = [float(r[0][0]) for r in x["resps"]]
            assert got == pytest.approx(want, abs=1e-6, rel=0), (task, x["doc_id"])
            assert x["acc"] == y["acc"]


@pytest.mark.slow  # two ranks start (~20 s on two cores)
def test_a_ranks_user_error_is_one_line_and_recorded(
    zoo: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Every rank meets the same mistake: one line (not one per rank, nor torchrun's
    traceback and failure table), the rank's exit code, the run recorded as failed."""
    out = tmp_path / "run"
    argv = _argv(zoo / "tiny-qwen2", out, "--nproc", "2", "--max-length", "2")
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ChildFailedError" not in err, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    assert errors[0].startswith("error: task kobest_boolq, document ")
    assert "longer than the model's maximum length (2)" in errors[0]
    manifest = rundir.read_manifest(out)
    assert manifest.status == "failed" and manifest.error.startswith("HarnessError: task ")


def _launched_for(out: Path) -> list[int]:
    """Pids of torchrun and the ranks evaluating into ``out`` (its path is in their payload)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "harness.eval_rank" in cmdline and str(out) in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow  # ranks start twice (~60 s on two cores)
def test_killed_launcher_leaves_no_rank_and_a_rerun_redoes_only_the_rest(
    zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    argv = _argv(zoo / "tiny-qwen2", out, "--nproc", "2", "--num-fewshot", "0,3")
    code = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"
    launcher = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:  # kill once the first of four evaluations is recorded
            assert launcher.poll() is None, launcher.stderr.read()
            assert time.monotonic() < deadline
            if (out / rundir.MANIFEST).is_file():
                try:
                    if rundir.read_manifest(out).completed:
                        break
                except Exception:
                    pass  # being replaced as we read
            time.sleep(0.05)
        assert len(_launched_for(out)) == 3  # torchrun and two ranks
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 60
        while _launched_for(out):
            assert time.monotonic() < deadline, f"ranks left behind: {_launched_for(out)}"
            time.sleep(0.1)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    killed = rundir.read_manifest(out)
    done = {(c.task, c.num_fewshot) for c in killed.completed}
    assert 1 <= len(done) < 4 and killed.status == "interrupted"
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    skipped = {
        (line.split()[1], int(line.split()[2].split("-")[0]))
        for line in err.splitlines()
        if line.startswith("skip ")
    }
    assert skipped == done
    manifest = rundir.read_manifest(out)
    assert manifest.status == "complete" and len(manifest.completed) == 4
    for shots in (0, 3):
        for task in TASKS.split(","):
            assert [s["doc_id"] for s in _samples(out, shots, task)] == list(range(12))


def test_batches_are_dealt_whole_and_evenly() -> None:
    """Each batch goes to one rank (so it is the one-process run's batch), the costliest
    first to the least loaded rank: the ranks finish together."""
    from harness.eval_ranks import deal

    costs = [9.0, 7.0, 5.0, 3.0, 3.0, 1.0]
    owner = deal(costs, 2)
    assert owner == deal(costs, 2) and set(owner) == {0, 1}
    loads = [sum(c for c, r in zip(costs, owner, strict=True) if r == rank) for rank in (0, 1)]
    assert sorted(loads) == [13.0, 15.0]  # a single rank would take 28
    assert deal(costs, 1) == [0] * 6 and deal([], 3) == []


def test_fuse_config_evaluate_nproc_reaches_each_evaluation(tmp_path: Path, fuse_config) -> None:
    from fusion.config import ConfigError, load_config
    from harness.fuse_eval.plan import Subject, eval_spec, make_plan

    texts = ["가나다 문장입니다."] * 4
    config = load_config(fuse_config(tmp_path, texts, evaluate={"nproc": 2, "tasks": ["nsmc"]}))
    subject = Subject("base", str(tmp_path / "model"))
    assert eval_spec(config, make_plan(config), subject, tmp_path / "out").nproc == 2
    bad = fuse_config(tmp_path, texts, evaluate={"nproc": 2, "backend": "vllm"})
    with pytest.raises(ConfigError, match="nproc > 1 applies to backend hf"):
        load_config(bad)


def _shared_rank(rank: int, port: int, results: dict) -> None:
    """One of two gloo ranks: run_shared's merge, then an error in rank 1's share only."""
    import torch.distributed as dist

    from harness import eval_ranks
    from harness.errors import HarnessError

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    eval_ranks._current = eval_ranks.Ranks(rank=rank, world_size=2, local_rank=rank)
    items = list(range(7))
    merged = eval_ranks.run_shared(items, [float(i) for i in items], lambda i: {i: i * i})
    results[f"merged{rank}"] = merged == {i: i * i for i in items}

    def work(i: int) -> dict:
        if eval_ranks.my_share([float(i) for i in items])[0] == i and rank == 1:
            raise HarnessError(f"item {i} on rank 1")
        return {i: i}

    try:
        eval_ranks.run_shared(items, [float(i) for i in items], work)
        results[f"raised{rank}"] = None
    except HarnessError as err:
        results[f"raised{rank}"] = str(err)
    dist.destroy_process_group()


@pytest.mark.slow  # two processes import torch (~10 s on two cores)
def test_run_shared_merges_and_raises_a_ranks_error_on_every_rank() -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_shared_rank, args=(port, results), nprocs=2, join=True)
        got = dict(results)
    assert got["merged0"] and got["merged1"]
    assert got["raised0"] == got["raised1"] and got["raised1"].endswith("on rank 1")
