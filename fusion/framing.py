"""A model's start token, what its tokenizer adds around a text, and the store's start sidecar.

Shared by extraction (fusion/extract.py, which writes the sidecar) and the strength check
(fusion/strength.py, which reads it); neither imports the other.

The **start token** is the one lm-eval conditions a text's first token on (the project's
``ko_bpb``): the tokenizer's BOS, its EOS where it has none. A tokenizer that prepends it
(Llama, Mistral) gives stores whose first position scores the text's first token. One that
prepends nothing (GPT-2, Qwen2) gives stores that never score it; for those, extraction
writes ``start.safetensors`` into the store: the model's log-probabilities of every token
after the start token alone (one forward pass of ``[start]``, the same for every row):

    logprobs  float32 [V]   log-softmax of the logits at the start token

with safetensors metadata ``format`` (``fusebench-start``), ``version``, ``start_id``,
``vocab_size``, ``model``, ``tokenizer_fingerprint``, ``dtype`` and ``revision`` (copied from
the store's manifest) and ``sha256`` (of the ``logprobs`` bytes). The store's shards and
manifest are exactly what they are without it (training and alignment never read it); the
file verifies itself: ``read_start`` refuses one whose metadata, shape or sha256 does not
match the store (with the reason, never an exception), and extraction rewrites such a file.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion.store import StoreManifest
from runrecords.atomic import write_atomic

START_FILE = "start.safetensors"
START_FORMAT = "fusebench-start"
START_VERSION = 1
_PROBE = "가나 다라 ab"  # any text: what the tokenizer adds around it is what is measured


def start_token(tokenizer: Any) -> int | None:
    """The start token id: BOS, else EOS (None when the tokenizer has neither)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


@dataclass(frozen=True)
class Framing:
    """What a tokenizer adds around a text (``prefix`` / ``suffix`` tokens), its start token,
    and whether the store scores every text token after the start token (``bos``)."""

    prefix: int
    suffix: int
    start: int | None
    bos: bool
    prefix_ids: tuple[int, ...] = ()

    @property
    def needs_start(self) -> bool:
        """Nothing is prepended: the text's first token needs the start sidecar to be scored."""
        return self.prefix == 0 and self.start is not None


def framing(tokenizer: Any) -> Framing:
    """Read off a probe text: the tokens added before and after it, and the start token."""
    plain = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    full = tokenizer(_PROBE, add_special_tokens=True)["input_ids"]
    prefix = next(
        (i for i in range(len(full) - len(plain) + 1) if full[i : i + len(plain)] == plain), 0
    )
    suffix = len(full) - len(plain) - prefix
    start = start_token(tokenizer)
    bos = prefix == 1 and full[0] == start
    return Framing(prefix, suffix, start, bos, tuple(full[:prefix]))


def _identity(manifest: StoreManifest) -> dict[str, str]:
    """The manifest fields a sidecar is tied to (a store of other settings is another store)."""
    settings = manifest.settings
    return {
        "model": manifest.model,
        "tokenizer_fingerprint": manifest.tokenizer_fingerprint,
        "vocab_size": str(manifest.vocab_size),
        "dtype": str(settings.get("dtype")),
        "revision": str(settings.get("revision")),
    }


def _digest(logprobs: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(logprobs, dtype="<f4").tobytes()).hexdigest()


def _safetensors_bytes(name: str, values: np.ndarray, metadata: dict[str, str]) -> bytes:
    """One float32 tensor as a safetensors file whose header has its keys sorted: the same
    bytes on every run and rank (safetensors' own writer orders metadata at random)."""
    header = {
        "__metadata__": metadata,
        name: {"dtype": "F32", "shape": list(values.shape), "data_offsets": [0, values.nbytes]},
    }
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + values.astype("<f4").tobytes()


def write_start(store: Path, manifest: StoreManifest, start_id: int, logprobs: np.ndarray) -> Path:
    """Write ``start.safetensors`` into the store directory atomically."""
    values = np.ascontiguousarray(logprobs, dtype=np.float32)
    if values.shape != (manifest.vocab_size,):
        raise ValueError(f"start logprobs shaped {values.shape}, not ({manifest.vocab_size},)")
    metadata = {
        "format": START_FORMAT,
        "version": str(START_VERSION),
        "start_id": str(int(start_id)),
        **_identity(manifest),
        "sha256": _digest(values),
    }
    path = Path(store) / START_FILE
    data = _safetensors_bytes("logprobs", values, metadata)
    write_atomic(path, lambda tmp: tmp.write_bytes(data))
    return path


def read_start(
    store: Path, manifest: StoreManifest, start_id: int
) -> tuple[np.ndarray | None, str | None]:
    """(logprobs float32 [V], None) when the store's sidecar exists and matches the store and
    ``start_id``; else (None, why not), never an exception."""
    path = Path(store) / START_FILE
    if not path.is_file():
        return None, f"no {START_FILE} in the store"
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            values = handle.get_tensor("logprobs")
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported, not raised
        text = " ".join(str(err).split())[:120]
        return None, f"{START_FILE} unreadable ({type(err).__name__}: {text})"
    want = {
        "format": START_FORMAT,
        "version": str(START_VERSION),
        "start_id": str(int(start_id)),
        **_identity(manifest),
    }
    for key, value in want.items():
        if metadata.get(key) != value:
            return None, (
                f"{START_FILE} was made for {key} {json.dumps(metadata.get(key))}, "
                f"the store has {json.dumps(value)}"
            )
    if values.dtype != np.float32 or values.shape != (manifest.vocab_size,):
        return None, f"{START_FILE} holds {values.dtype} {list(values.shape)}, not float32 [V]"
    if metadata.get("sha256") != _digest(values):
        return None, f"{START_FILE}: sha256 does not match its metadata (corrupt file)"
    if np.isnan(values).any() or np.isposinf(values).any():
        return None, f"{START_FILE}: NaN or +inf log-probabilities"
    mass = float(np.exp(values.astype(np.float64)).sum())
    if not math.isclose(mass, 1.0, rel_tol=1e-3):
        return None, f"{START_FILE}: probabilities sum to {mass:.4f}, not 1"
    return values, None
