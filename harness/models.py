"""Which model a run evaluates: a local directory (hashed) or a Hub id (with its revision)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from fusion.model_dir import check_model_dir
from harness.errors import HarnessError
from reports.rundir import ModelInfo

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def weights_sha256(model_dir: Path) -> str:
    """One digest over every weight file (name and bytes), so a retrained checkpoint saved to
    the same path is never mistaken for the old one."""
    digest = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    for path in files:
        digest.update(path.relative_to(model_dir).as_posix().encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def resolve_model(name: str, revision: str | None = None) -> ModelInfo:
    """Check a model reference before anything heavy is loaded.

    A local directory must hold a config and a tokenizer; anything else must look like a Hub
    id, and with the Hub switched off it cannot be loaded at all.
    """
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise HarnessError(f"{name}: a model must be a directory (config.json and weights)")
        if not (path / "config.json").is_file():
            raise HarnessError(f"{name}: no config.json; not a Hugging Face model directory")
        if not any((path / f).is_file() for f in TOKENIZER_FILES):
            raise HarnessError(f"{name}: no tokenizer files ({', '.join(TOKENIZER_FILES)})")
        if not any(p.suffix in WEIGHT_SUFFIXES for p in path.rglob("*")):
            raise HarnessError(f"{name}: no weight files ({', '.join(WEIGHT_SUFFIXES)})")
        check_model_dir(path)  # truncated weights, a config out of step with them
        return ModelInfo(
            name_or_path=str(path.resolve()),
            revision=None,
            local=True,
            sha256=weights_sha256(path),
        )
    if not _HUB_ID.match(name) or name.startswith((".", "/", "~")):
        raise HarnessError(f"{name}: model path does not exist")
    if _hub_offline():
        raise HarnessError(f"{name}: no such local directory, and the Hub is off (HF_HUB_OFFLINE)")
    return ModelInfo(name_or_path=name, revision=revision, local=False, sha256=None)


def cache_key(model: ModelInfo, backend: str, dtype: str) -> str:
    """Identity of a model's responses: weights (or Hub id and revision), backend and dtype.

    lm-eval's own response cache is keyed by request only; keying the cache file by this
    keeps checkpoints from reading each other's answers.
    """
    ident = model.sha256 or f"{model.name_or_path}@{model.revision or 'main'}"
    return hashlib.sha256(f"{ident}|{backend}|{dtype}".encode()).hexdigest()[:24]
