"""``python -m fusion.train.main CONFIG [--resume]``: one rank, as torchrun or deepspeed start it.

User errors print one line on rank 0 and exit with their code (2; 130 when interrupted),
never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from runrecords.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion.train.main", description=__doc__)
    parser.add_argument("config", type=Path, help="Fusion config YAML (its train section).")
    parser.add_argument(
        "--resume", action="store_true", help="Continue from the latest checkpoint."
    )
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    parser.add_argument(
        "--start-tag", default=None, help=argparse.SUPPRESS
    )  # the checkpoint the launcher verified and chose ("none": step 0)
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )  # the deepspeed launcher passes it
    args = parser.parse_args(argv)
    if args.local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    from fusion.config import load_train_config
    from fusion.train.trainer import decided_start, train

    try:
        config = load_train_config(args.config)
        final = train(
            config,
            resume=args.resume,
            progress=not args.no_progress,
            say=_stderr,
            start=None if args.start_tag is None else decided_start(config, args.start_tag),
        )
    except UserError as err:
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    if os.environ.get("RANK", "0") == "0" and not os.environ.get("FUSEBENCH_LAUNCHED"):
        print(f"model: {final}", flush=True)
    return 0


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
