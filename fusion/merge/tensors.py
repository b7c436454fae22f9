"""Tensor-by-tensor input and output.

Reading: safetensors' ``safe_open`` maps the whole file, and every page read stays in the
process's resident set for as long as the file is open. A merge that keeps three inputs
open therefore ends up holding all of them. Opening the file for each tensor and closing
it right after unmaps the pages, so only the tensors in hand count (the page cache is the
kernel's, and it drops it under pressure). The header is re-read each time; it is small.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from fusion.merge.errors import MergeError
from fusion.merge.models import ModelFiles

# Files copied from the pivot next to the merged weights (config, tokenizer, templates).
SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def load_tensor(model: ModelFiles, name: str) -> torch.Tensor:
    """One tensor, read with its file open only for this call (see the module docstring)."""
    from safetensors import safe_open

    with safe_open(str(model.tensors[name].file), framework="pt") as handle:
        return handle.get_tensor(name)


def dtype_named(name: str | None) -> torch.dtype | None:
    """``float32`` / ``bfloat16`` / ``float16`` (or ``fp32``...) as a torch dtype."""
    if name is None:
        return None
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    dtype = getattr(torch, aliases.get(name, name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise MergeError(f"dtype: {name!r} is not a floating-point torch dtype")
    return dtype


def copy_side_files(source: Path, target: Path) -> list[str]:
    """Copy config, tokenizer and templates from ``source``; returns what was copied."""
    copied = []
    for name in SIDE_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
            copied.append(name)
    return copied
