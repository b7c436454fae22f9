"""The one launcher for multi-process stages (extraction and training): torchrun on this
machine, with a clean child environment, this checkout on PYTHONPATH, SIGTERM forwarded to
the ranks and their exit code returned; no rank outlives the command that launched it.

Why a module of its own: every stage that starts ranks must drop the one-rank rendezvous an
in-process stage may have set up here (its port is taken), and must pass a scheduler's
SIGTERM on so that ranks checkpoint; one copy keeps that true for all of them.

Orphans: torchrun runs in its own session (a terminal's Ctrl-C reaches this process, which
passes it on) with a parent-death signal on Linux, so that a killed command (SIGKILL, an
OOM kill) takes torchrun down, and torchrun its ranks; each rank starts through
``fusion.rank``, whose watchdog stops it if torchrun or this command is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

# Set with the one-rank variables, so that a process started later from this one (torchrun
# for another stage, an evaluation) does not inherit a rendezvous whose port is taken.
SINGLE_RANK_MARK = "FUSEBENCH_SINGLE_RANK"
SINGLE_RANK_KEYS = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    SINGLE_RANK_MARK,
)


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the one-rank rendezvous this process made for itself, if it made one."""
    if env.get(SINGLE_RANK_MARK) != "1":
        return dict(env)
    return {key: value for key, value in env.items() if key not in SINGLE_RANK_KEYS}


def forget_single_rank() -> None:
    """Drop the one-rank rendezvous this process set up for in-process training once its
    group is gone, so that later work here (evaluation, a model server) does not see it."""
    if os.environ.get(SINGLE_RANK_MARK) == "1":
        for key in SINGLE_RANK_KEYS:
            os.environ.pop(key, None)


def rank_env(nproc: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment ranks start with: clean, this checkout importable, threads shared,
    and this process's pid for the ranks' watchdog (``fusion.rank``)."""
    from fusion.rank import OWNER_PID

    env = child_env(dict(os.environ))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(PACKAGE_ROOT), env.get("PYTHONPATH", "")] if p
    )
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env[OWNER_PID] = str(os.getpid())
    env.update(extra or {})
    return env


def torchrun_command(module: str, args: list[str], nproc: int) -> list[str]:
    """torchrun starting ``python -m fusion.rank module args`` (the watchdog, then module);
    torchrun through ``fusion.torchrun``, which ends without a traceback when told to stop."""
    return [
        sys.executable,
        "-m",
        "fusion.torchrun",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "fusion.rank",
        module,
        *args,
    ]


_PR_SET_PDEATHSIG = 1


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when this process dies
    (Linux; elsewhere None). torchrun, told so, stops its ranks and exits.

    libc is loaded here, before the fork; the child only calls into it, then checks that
    this process did not die before the signal was set (it would never come).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


@dataclass
class Launched:
    """How the ranks ended: torchrun's exit code, and whether we were told to stop."""

    code: int
    interrupted: bool


def run_ranks(
    module: str, args: list[str], *, nproc: int, env: dict[str, str] | None = None
) -> Launched:
    """Run ``python -m module args`` on ``nproc`` ranks and wait for them.

    SIGTERM and Ctrl-C to this process go on to torchrun (in a session of its own, it does
    not see the terminal's), which hands them to every rank: each finishes its unit of
    work, saves, exits. If this process leaves early, torchrun is told to stop.
    """
    return _supervise(torchrun_command(module, args, nproc), rank_env(nproc, env))


def run_alone(module: str, args: list[str], *, env: dict[str, str] | None = None) -> Launched:
    """Run ``python -m module args`` as one child process, without torchrun (no rendezvous
    variables: vLLM must not mistake it for a rank), supervised as ``run_ranks``' ranks are.
    Why a child: a GPU engine (vLLM) gives its memory back only when its process exits."""
    cmd = [sys.executable, "-m", "fusion.rank", module, *args]
    return _supervise(cmd, rank_env(1, env))


def _supervise(cmd: list[str], env: dict[str, str]) -> Launched:
    """Start ``cmd`` in a session of its own, forward SIGTERM / Ctrl-C, wait, never leave
    it behind.

    SIGTERM is taken over before the child is started: the CLI's own handler raises
    KeyboardInterrupt, which Python drops when it lands in ``Popen``'s fork handlers
    ("Exception ignored in ... _releaseLock"), and the ranks would train on unaware. A
    SIGTERM that comes before the child exists is passed on as soon as it does.
    """
    stopped: list[int] = []
    started: list[subprocess.Popen] = []
    pending: list[int] = []  # signals that came before the child existed

    def forward(signum: int, frame: object) -> None:
        stopped.append(signum)
        if started:
            started[0].send_signal(signum)
        else:
            pending.append(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        process = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=parent_death_signal(),
        )
    except BaseException:
        signal.signal(signal.SIGTERM, previous)
        raise
    started.append(process)
    while pending:  # told to stop while it was being started
        process.send_signal(pending.pop(0))
    try:
        code = process.wait()
    except KeyboardInterrupt:
        stopped.append(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        code = process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:  # leaving on a second Ctrl-C, or an error: stop them too
            process.terminate()
    return Launched(code=code, interrupted=bool(stopped))
