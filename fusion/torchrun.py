"""``python -m fusion.torchrun ARGS``: torchrun, ending quietly when it is told to stop.

torchrun turns SIGTERM / SIGINT into a ``SignalException``; once it has passed the signal
to its ranks (which save and stop), that exception ends it with a traceback of its own on
the user's console, under fusebench's one line. Here it ends with 128 + the signal's number,
as a shell reports a process a signal ended; the launcher reads what the ranks recorded.

A launcher that reports the ranks' failures itself (``fusebench eval --nproc``) sets
``FUSEBENCH_TORCHRUN_FAILURES`` to a file: torchrun's failure report (a traceback and a table)
is written there as JSON, rank -> exit code and signal, instead of onto the console, and
its log lines about it are not shown.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

FAILURES = "FUSEBENCH_TORCHRUN_FAILURES"


def main() -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    report = os.environ.get(FAILURES)
    if report:  # its log lines about the failure too: the launcher reports it
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        torchrun()
    except SignalException as stop:
        return 128 + int(stop.sigval)
    except ChildFailedError as failed:
        if not report:
            raise
        summary = {
            str(rank): {"exitcode": failure.exitcode, "signal": failure.signal_name()}
            for rank, failure in failed.failures.items()
        }
        Path(report).write_text(json.dumps(summary), encoding="utf-8")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
