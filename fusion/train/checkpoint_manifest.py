"""Which checkpoint a resume may trust: each file's size and sha256, recorded when it is saved.

After every rank has saved ``step-NNNNNN/``, rank 0 writes ``fusebench-manifest.json`` in it
(atomically, last): the step, the run's settings and every file with its size and sha256, as
the top-k stores record their shards. A folder without a readable manifest is a save that did
not finish and is never loaded. On resume the newest folder whose files all match is chosen,
found by listing the folder (``latest.json`` is a convenience for people and scripts, not
needed). A damaged newer checkpoint is named in one line, with the file and the reason, and
the run goes on from the intact one; with none intact the resume is refused in one line.

Checkpoints written before manifests existed (fusebench 0.1.0 and earlier: no manifest, a
``latest.json`` without ``"manifest"``) are accepted up to the one that file points to, with a
one-line warning that they cannot be verified.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion.errors import FusionError
from runrecords.atomic import write_json_atomic
from runrecords.digest import sha256_file

MANIFEST = "fusebench-manifest.json"
POINTER = "latest.json"
FORMAT = "fusebench-checkpoint"
VERSION = 1
TAG_PREFIX = "step-"


class CheckpointError(FusionError):
    """A checkpoint cannot be resumed (damaged, missing, or made with other settings)."""


def tag_step(name: str) -> int | None:
    """The step of a ``step-NNNNNN`` folder name, None for any other name."""
    digits = name[len(TAG_PREFIX) :]
    return int(digits) if name.startswith(TAG_PREFIX) and digits.isdigit() else None


def tags(root: Path) -> list[Path]:
    """The checkpoint folders under ``root``, newest (highest step) first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and tag_step(p.name) is not None]
    return sorted(found, key=lambda p: tag_step(p.name) or 0, reverse=True)


def checkpoint_files(folder: Path) -> list[str]:
    """Every file a save left in ``folder`` (relative, sorted), without the manifest and
    temporary files of an atomic write."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    )


def digests(paths: list[Path]) -> list[str]:
    """sha256 of each file, several at a time (hashlib releases the GIL on large reads)."""
    if not paths:
        return []
    workers = max(1, min(8, os.cpu_count() or 1, len(paths)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(sha256_file, paths))


def file_records(folder: Path, names: list[str]) -> list[dict[str, Any]]:
    """{file, size, sha256} of each named file of ``folder``."""
    paths = [folder / name for name in names]
    return [
        {"file": name, "size": path.stat().st_size, "sha256": digest}
        for name, path, digest in zip(names, paths, digests(paths), strict=True)
    ]


def write_manifest(
    folder: Path, step: int, run: dict[str, Any], files: list[dict[str, Any]]
) -> None:
    """The manifest, written atomically once every file is in place (it is what marks the
    checkpoint whole)."""
    record = {
        "format": FORMAT,
        "version": VERSION,
        "tag": folder.name,
        "step": step,
        **run,
        "files": sorted(files, key=lambda f: f["file"]),
    }
    write_json_atomic(folder / MANIFEST, record)


def problem(folder: Path) -> str | None:
    """Why the checkpoint in ``folder`` cannot be trusted (the file and the cause), or None."""
    file = folder / MANIFEST
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{folder}: no {MANIFEST} (its save did not finish)"
    except (OSError, ValueError) as err:
        return f"{file}: unreadable ({err})"
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not _listing(files):
        return f"{file}: not a fusebench checkpoint manifest"
    paths = []
    for entry in files:  # type: ignore[union-attr]
        path = folder / entry["file"]
        if not path.is_file():
            return f"{path}: missing"
        size = path.stat().st_size
        if size != entry["size"]:
            return f"{path}: {size} bytes, {entry['size']} when saved (truncated or replaced)"
        paths.append(path)
    for path, entry, digest in zip(paths, files, digests(paths), strict=True):  # type: ignore[arg-type]
        if digest != entry["sha256"]:
            return f"{path}: sha256 differs from the one recorded when saved (corrupt)"
    return None


def _listing(files: Any) -> bool:
    """Whether a manifest's ``files`` is a list of {file, size, sha256}."""
    return isinstance(files, list) and all(
        isinstance(entry, dict)
        and isinstance(entry.get("file"), str)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("sha256"), str)
        for entry in files
    )


def read_pointer(root: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``latest.json`` and why it cannot be used (None, None when there is none)."""
    file = root / POINTER
    try:
        pointer = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as err:
        return None, f"{file}: unreadable ({err}); found the checkpoints by listing {root}"
    if not isinstance(pointer, dict) or tag_step(str(pointer.get("tag", ""))) is None:
        return None, f"{file}: names no checkpoint; found the checkpoints by listing {root}"
    return pointer, None


def exists(root: Path) -> bool:
    """Whether ``root`` holds a run's checkpoints (whole or not): what a fresh start refuses
    to overwrite. A lone folder without a manifest (a first save that died) does not count."""
    return (root / POINTER).exists() or any((p / MANIFEST).exists() for p in tags(root))


@dataclass
class Choice:
    """The checkpoint to resume (None: none exists), and the lines a resume says about it."""

    chosen: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)


def newest_intact(root: Path) -> Choice:
    """The newest checkpoint whose files match its manifest, with one line per damaged newer
    one (the file and why) and per checkpoint that cannot be verified. Raises
    ``CheckpointError`` (one line, every checkpoint and its fault) when none can be used."""
    pointer, pointer_problem = read_pointer(root)
    notes = [f"train: {pointer_problem}"] if pointer_problem else []
    legacy_limit = (
        tag_step(pointer["tag"]) if pointer is not None and "manifest" not in pointer else None
    )
    rejected: list[tuple[Path, str]] = []
    for folder in tags(root):
        step = tag_step(folder.name) or 0
        if not (folder / MANIFEST).exists() and legacy_limit is not None and step <= legacy_limit:
            notes.append(
                f"train: {folder}: written before checkpoints had a manifest; it cannot be "
                "verified, resuming from it as it is"
            )
            return Choice(describe(root, folder.name), _fallback(notes, rejected, folder))
        why = problem(folder)
        if why is None:
            return Choice(describe(root, folder.name), _fallback(notes, rejected, folder))
        rejected.append((folder, why))
    if not rejected and pointer is None:
        return Choice(None, notes)
    if not rejected:
        raise CheckpointError(f"{root / POINTER}: points to {pointer['tag']}, which is missing")  # type: ignore[index]
    faults = "; ".join(_short(root, why) for _, why in rejected)
    raise CheckpointError(
        f"{root}: no intact checkpoint to resume ({faults}); remove {root} to start afresh"
    )


def describe(root: Path, tag: str) -> dict[str, Any]:
    """What a run resumes from tag ``tag`` (step, settings): its manifest, or for a checkpoint
    older than manifests ``latest.json`` (the settings of the same run). Not verified here:
    ranks read what the launcher chose and checked."""
    file = root / tag / MANIFEST
    try:
        if file.exists():
            return json.loads(file.read_text(encoding="utf-8"))
        pointer = json.loads((root / POINTER).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{file}: unreadable ({err})") from None
    return {**pointer, "tag": tag, "step": tag_step(tag)}


def _fallback(notes: list[str], rejected: list[tuple[Path, str]], chosen: Path) -> list[str]:
    lines = [
        f"train: {why}: not resuming {folder.name}; using {chosen.name}" for folder, why in rejected
    ]
    return notes + lines


def _short(root: Path, why: str) -> str:
    """A fault with its path relative to the checkpoints folder (the error names it once)."""
    prefix = f"{root}{os.sep}"
    return why[len(prefix) :] if why.startswith(prefix) else why
