"""Where a merge may write: never over one of its inputs, never over a folder it did not write.

``--overwrite`` replaces a whole directory. That is safe only for a directory that a previous
merge wrote (it holds the merge record, ``fusebench_merge.yaml``); any other folder may hold
the user's files, or be the very model being merged, so it is refused before anything is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fusion.merge.errors import MergeError
from runrecords import lock
from runrecords.atomic import blocking_file
from runrecords.errors import OutputExists

# What a merge writes beside the weights: the spec as run (fusion/merge/run.py, fusion/chat.py).
MERGE_RECORD = "fusebench_merge.yaml"


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an ``output`` that is a file, or a non-empty folder that is not a merge's output
    (whatever ``overwrite`` says), or a previous merge's output without ``overwrite``."""
    blocker = blocking_file(output)
    if blocker is not None:
        where = "" if blocker == output else f" ({blocker} is a file)"
        raise MergeError(f"output {output}: not a directory{where}")
    if not output.is_dir() or not lock.entries(output):  # this command's lock file: empty
        return
    if not (output / MERGE_RECORD).is_file():
        raise OutputExists(
            f"output {output}: holds files no merge wrote (no {MERGE_RECORD}); "
            "--overwrite replaces only a previous merge's output: choose another output"
        )
    if not overwrite:
        raise OutputExists(f"output {output}: exists and is not empty (use --overwrite)")


def check_not_an_input(output: Path, inputs: Iterable[tuple[str, Path]]) -> None:
    """Refuse an ``output`` that is one of the (field, directory) ``inputs`` or holds one:
    writing the merge there would replace a model the merge reads."""
    target = output.resolve()
    for field, path in inputs:
        source = path.resolve()
        if source == target or target in source.parents:
            what = "is" if source == target else "holds"
            raise MergeError(
                f"output {output}: {what} {field} ({path}), an input of this merge; "
                "choose another output"
            )
