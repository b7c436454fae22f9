"""A rank for the launcher tests: records its pid in the folder it is given, then sleeps.

It has no signal handling of its own, so what stops it is what stops every rank: torchrun
passing on a signal, or the watchdog of ``fusion.rank`` that every launched rank starts with.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    folder = Path(sys.argv[1])
    (folder / f"rank-{os.environ.get('RANK', '0')}.pid").write_text(str(os.getpid()))
    time.sleep(600)
