"""``python -m fusion.rank MODULE ARGS...``: where every rank our launcher starts begins.

Why: a rank must not outlive the command that started it. If the command is killed
(SIGKILL, an OOM kill) torchrun gets a parent-death signal and stops its ranks; if torchrun
itself is killed, nothing would tell the ranks, and they would run to the end, racing with a
rerun. So each rank watches its launcher: a daemon thread notices that its parent (torchrun)
or the launching command is gone, sends the rank SIGTERM (a training rank saves a
checkpoint and stops, an extraction rank stops; finished shards are on disk) and, if the
rank has not exited after a grace period, ends it.

Then the stage's module runs as ``__main__``, exactly as ``python -m MODULE ARGS`` would.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

OWNER_PID = "FUSEBENCH_LAUNCHER_PID"  # the command that launched torchrun
GRACE = "FUSEBENCH_ORPHAN_GRACE_S"  # seconds a rank has to stop once told (default 60)
POLL_S = 0.5


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(parent: int, owner: int | None, grace: float) -> None:
    while os.getppid() == parent and (owner is None or alive(owner)):
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(143)  # told to stop and still here: a launcher-less rank must not linger


def watch_launcher() -> None:
    """Start the watchdog thread for this rank (see the module docstring)."""
    owner = os.environ.get(OWNER_PID)
    grace = float(os.environ.get(GRACE, "60"))
    thread = threading.Thread(
        target=_watch,
        args=(os.getppid(), int(owner) if owner else None, grace),
        name="fusebench-launcher-watch",
        daemon=True,
    )
    thread.start()


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m fusion.rank MODULE [ARGS...]")
    module = sys.argv[1]
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    watch_launcher()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
