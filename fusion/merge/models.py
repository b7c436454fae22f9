"""Find the merge inputs and prove they fit together before any tensor is merged.

mergekit would fail deep inside its task graph on a shape mismatch (a traceback), or ask
the Hub about a local path that does not exist. Here every input is resolved to a local
directory first, and architectures, tensor names and shapes are compared from the weight
files' headers alone (nothing is loaded), so the user gets one line naming the first
tensor that does not match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from fusion.merge.errors import MergeError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives and what it looks like."""

    file: Path
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class ModelFiles:
    """A local model directory with its tensor index (name -> file, shape, dtype)."""

    label: str  # what the user wrote
    path: Path
    config: dict
    tensors: dict[str, TensorInfo]

    @property
    def architecture(self) -> str:
        names = self.config.get("architectures") or [self.config.get("model_type", "?")]
        return str(names[0])

    @property
    def size_bytes(self) -> int:
        return sum(file.stat().st_size for file in {info.file for info in self.tensors.values()})


def resolve(reference: str, field: str, trust_remote_code: bool = False) -> Path:
    """A local directory for ``reference``: the path itself, or a Hub snapshot."""
    path = Path(reference).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise MergeError(f"{field}: {reference} is a file; give the model's directory")
    if not _HUB_ID.match(reference) or reference.startswith((".", "/")):
        raise MergeError(f"{field}: {reference}: no such model directory")
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    if trust_remote_code:
        patterns.append("*.py")
    try:
        return Path(snapshot_download(reference, allow_patterns=patterns))
    except Exception as exc:  # offline, unknown repo, gated: all user-facing
        raise MergeError(
            f"{field}: {reference}: not a local directory and not on the Hub ({type(exc).__name__})"
        ) from None


def _safetensors_header(file: Path) -> dict[str, TensorInfo]:
    from safetensors import safe_open

    infos = {}
    with safe_open(str(file), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118 (safe_open is not iterable)
            view = handle.get_slice(name)
            infos[name] = TensorInfo(file, tuple(view.get_shape()), view.get_dtype())
    return infos


def read_model(reference: str, field: str, trust_remote_code: bool = False) -> ModelFiles:
    """Resolve ``reference`` and index its safetensors weights (headers only)."""
    path = resolve(reference, field, trust_remote_code)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise MergeError(f"{field}: {reference}: no config.json (not a Hugging Face model)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    index_file = path / "model.safetensors.index.json"
    if index_file.is_file():
        weight_map = json.loads(index_file.read_text(encoding="utf-8"))["weight_map"]
        files = sorted({path / name for name in weight_map.values()})
    else:
        files = sorted(path.glob("*.safetensors"))
    if not files:
        raise MergeError(
            f"{field}: {reference}: no safetensors weights (re-save the model with "
            "save_pretrained(..., safe_serialization=True))"
        )
    tensors: dict[str, TensorInfo] = {}
    for file in files:
        if not file.is_file():
            raise MergeError(
                f"{field}: {reference}: {file.name} is listed in the index but missing"
            )
        tensors.update(_safetensors_header(file))
    return ModelFiles(reference, path, config, tensors)


def check_compatible(reference: ModelFiles, others: list[ModelFiles]) -> None:
    """Same architecture and the same tensors with the same shapes, or one line saying where not."""
    for other in others:
        if other.architecture != reference.architecture:
            raise MergeError(
                f"different architectures: {reference.label} is {reference.architecture}, "
                f"{other.label} is {other.architecture}"
            )
        for name, info in reference.tensors.items():
            theirs = other.tensors.get(name)
            if theirs is None:
                raise MergeError(f"tensor {name}: in {reference.label}, missing from {other.label}")
            if theirs.shape != info.shape:
                raise MergeError(
                    f"tensor {name}: shape {list(info.shape)} in {reference.label} but "
                    f"{list(theirs.shape)} in {other.label}"
                )
        extra = sorted(set(other.tensors) - set(reference.tensors))
        if extra:
            raise MergeError(f"tensor {extra[0]}: in {other.label}, missing from {reference.label}")
