"""``python -m fusion.torchrun ARGS``: torchrun, ending quietly when it is told to stop.

torchrun turns SIGTERM / SIGINT into a ``SignalException``; once it has passed the signal
to its ranks (which save and stop), that exception ends it with a traceback of its own on
the user's console, under fusebench's one line. Here it ends with 128 + the signal's number,
as a shell reports a process a signal ended; the launcher reads what the ranks recorded.
"""

from __future__ import annotations

import sys


def main() -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torchrun

    try:
        torchrun()
    except SignalException as stop:
        return 128 + int(stop.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
