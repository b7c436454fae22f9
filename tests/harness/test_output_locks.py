"""One writer per output, for the commands that write a model or a zoo (``merge``, ``vocab
expand``, ``zoo build``) and across nested directories (``eval --output WORK/eval/x`` while
``fuse run`` holds WORK, and the reverse).

Real processes: a holder process keeps a directory held (``runrecords.lock.hold``, as the
commands do) while the real CLI is run in another process against it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runrecords.atomic import atomic_directory
from runrecords.lock import LOCK_NAME, Busy, hold

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@contextmanager
def holder(directory: Path, command: str) -> Iterator[subprocess.Popen]:
    """Another process holding ``directory`` as ``command`` until the block ends."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from runrecords.lock import hold\n"
            "with hold(Path(sys.argv[1]), sys.argv[2]):\n"
            "    print('held', flush=True); time.sleep(600)",
            str(directory),
            command,
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()


def fusebench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def refusal(done: subprocess.CompletedProcess) -> str:
    """The one line a refused command prints (exit 2, no traceback)."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_merge_vocab_expand_and_zoo_build_refuse_a_held_output(zoo: Path, tmp_path: Path) -> None:
    config = tmp_path / "merge.yaml"
    llama = zoo / "tiny-llama"
    config.write_text(
        f"method: varm\nbase_model: {llama}\nmodels:\n  - model: {llama}\n  - model: {llama}\n",
        encoding="utf-8",
    )
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("안녕하세요 반갑습니다\n" * 20, encoding="utf-8")
    commands = {
        "fusebench merge": ("merge", str(config), "--output"),
        "fusebench vocab expand": (
            "vocab",
            "expand",
            str(llama),
            "--corpus",
            str(corpus),
            "--output",
        ),
        "fusebench zoo build": (
            "zoo",
            "build",
            "--kind",
            "random",
            "--names",
            "tiny-gpt2",
            "--output",
        ),
    }
    for command, argv in commands.items():
        out = tmp_path / command.replace(" ", "-")
        with holder(out, command) as held:
            before = _tree(out)
            line = refusal(fusebench(*argv, str(out)))
            assert line.startswith(f"error: {out}: in use by {command} (pid {held.pid} on host ")
            assert line.endswith("; wait for it or stop it")
            assert _tree(out) == before  # nothing written, the holder's record kept
            assert json.loads((out / LOCK_NAME).read_text())["pid"] == held.pid


def test_a_merge_holds_its_output_through_the_swap_and_leaves_no_lock(
    zoo: Path, tmp_path: Path
) -> None:
    """The model folder is written aside and renamed over the output: the lock goes with it
    (the same locked file), so a second writer is refused up to the very end."""
    out = tmp_path / "model"
    probe = (
        "import sys; from pathlib import Path; from runrecords.lock import hold, Busy\n"
        "try:\n"
        "    with hold(Path(sys.argv[1]), 'second'): print('free')\n"
        "except Busy as err: print(err)"
    )
    with hold(out, "fusebench merge"):
        with atomic_directory(out, overwrite=True) as scratch:
            (scratch / "weights").write_text("new")
        assert (out / "weights").read_text() == "new"  # swapped in, still held:
        seen = subprocess.run(
            [sys.executable, "-c", probe, str(out)], env=ENV, capture_output=True, text=True
        ).stdout
        assert f"{out}: in use by fusebench merge (pid {os.getpid()}" in seen, seen
    assert not (out / LOCK_NAME).exists() and (out / "weights").is_file()
    # And a real merge: its output is a model, without a lock file once it has ended.
    config = tmp_path / "merge.yaml"
    llama = zoo / "tiny-llama"
    config.write_text(
        f"method: varm\nbase_model: {llama}\nmodels:\n  - model: {llama}\n  - model: {llama}\n",
        encoding="utf-8",
    )
    merged = tmp_path / "merged"
    done = fusebench("merge", str(config), "--output", str(merged), "--quiet")
    assert done.returncode == 0, done.stderr
    assert (merged / "config.json").is_file() and not (merged / LOCK_NAME).exists()
    done = fusebench("merge", str(config), "--output", str(merged), "--quiet", "--overwrite")
    assert done.returncode == 0, done.stderr  # its own lock file is not "files no merge wrote"


def test_eval_inside_a_held_work_dir_is_refused(zoo: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    inside = work / "eval" / "x"
    with holder(work, "fusebench fuse run") as held:
        line = refusal(
            fusebench(
                "eval",
                str(zoo / "tiny-gpt2"),
                "--tasks",
                "nsmc",
                "--limit",
                "2",
                "--output",
                str(inside),
            )
        )
        assert line.startswith(
            f"error: {inside}: inside {work.resolve()}, which is in use by fusebench fuse run "
            f"(pid {held.pid} on host "
        ), line
        assert not (work / "eval").exists()  # nothing created
        # The check only looked: the holder still holds WORK, its record unchanged.
        assert json.loads((work / LOCK_NAME).read_text())["pid"] == held.pid
        again = fusebench("zoo", "build", "--kind", "random", "--output", str(work))
        assert f"{work}: in use by fusebench fuse run (pid {held.pid}" in refusal(again)
    # Once the holder is gone (killed: its lock file stays behind), WORK/eval/x is free.
    assert (work / LOCK_NAME).is_file()
    with hold(inside, "fusebench eval"):
        assert (inside / LOCK_NAME).is_file()


def test_fuse_run_over_a_held_eval_run_is_refused(zoo: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    inside = work / "eval" / "x"
    text = (REPO / "configs" / "tiny-fuse.yaml").read_text(encoding="utf-8")
    text = text.replace("../zoo/", f"{zoo}/").replace(
        "../runs/tiny-llama-ko", str(zoo / "tiny-llama")
    )
    lines = [
        f"work_dir: {work}" if line.startswith("work_dir:") else line for line in text.splitlines()
    ]
    config = tmp_path / "config.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with holder(inside, "fusebench eval") as held:
        before = _tree(work)
        line = refusal(fusebench("fuse", "run", str(config), "--quiet"))
        assert line.startswith(
            f"error: {work}: {inside.resolve()} inside it is in use by fusebench eval "
            f"(pid {held.pid} on host "
        ), line
        assert _tree(work) == before


def test_one_process_may_hold_a_folder_inside_its_own(tmp_path: Path) -> None:
    """``fuse run`` evaluating into WORK/eval/x itself is no conflict."""
    work, inside = tmp_path / "work", tmp_path / "work" / "eval" / "x"
    with hold(work, "fusebench fuse run"), hold(inside, "fusebench eval"):
        assert (inside / LOCK_NAME).is_file()
    with hold(inside, "fusebench eval"), hold(work, "fusebench fuse run"):
        assert (work / LOCK_NAME).is_file()


def test_a_look_at_the_lock_does_not_make_a_free_folder_busy(tmp_path: Path) -> None:
    """Another command's check holds the lock file shared for an instant; taking the lock
    waits that out rather than refusing."""
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text("")
    looker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            "f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_SH)\n"
            "print('looking', flush=True); time.sleep(0.1)",
            str(out / LOCK_NAME),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert looker.stdout.readline() == "looking\n"
        with (
            hold(out, "fusebench eval"),
            open(out / LOCK_NAME) as handle,
            pytest.raises(BlockingIOError),
        ):
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # held: by this process
    finally:
        looker.wait()


def test_a_busy_folder_is_still_refused_at_once(tmp_path: Path) -> None:
    with holder(tmp_path / "run", "fusebench eval") as held:
        started = time.monotonic()
        with pytest.raises(Busy, match=f"pid {held.pid}"), hold(tmp_path / "run", "x"):
            pass
        assert time.monotonic() - started < 2
        held.send_signal(signal.SIGKILL)
        held.wait()
        with hold(tmp_path / "run", "x"):  # a dead holder's lock is taken over
            pass
