"""The top-k store: one model's top-k next-token log-probabilities over one corpus, on disk.

Format (DESIGN.md, "Top-k store"): a directory with ``manifest.json`` and safetensors shards.
Each shard holds a run of consecutive corpus rows, unpadded:

    row_ids        int64   [S]      index of each sequence's row in the pre-split corpus
    offsets        int64   [S+1]    sequence s owns positions offsets[s]:offsets[s+1]
    token_ids      ids     [N]      the model's tokens of the row
    topk_ids       ids     [N, k]   top-k next-token ids at each position (PAD_ID = unused)
    topk_logprobs  float16 [N, k]   their log-probabilities (-inf where the id is PAD_ID)
    nll            float16 [N]      -log p(gold next token); the last position has no gold: 0
    mean_nll       float32 [S]      mean of nll over positions that have a gold next token
    loss_mask      uint8   [N]      only in a ``masked`` store (a conversation corpus): 1 where
                                    the next token is part of a response (the positions that
                                    are trained and that mean_nll averages over), else 0

Token ids are stored in the fewest whole bytes that hold every id of the vocabulary plus the
pad (manifest ``id_bytes``): uint16 for vocabularies up to 65,535 tokens, three little-endian
bytes (uint8 [..., 3]) up to 16.7M, int32 otherwise; the all-ones value is PAD_ID. Readers
get int32 back whatever the width. At k=10 that is 2 + 20 + 20 + 2 = 44 B per position for
a 32k vocabulary and 3 + 30 + 20 + 2 = 55 B for a 152k one (int32 would be 66 B), plus 16 B
per sequence *(the reference stores ~100 B per position padded to 2048)*. The fused-targets store is the same format in
the target's vocabulary (``kind: fused``); fused rows may hold fewer than k entries.

A store with ``layout: ragged`` (the fused-targets store) keeps a variable number of entries
per position, so that a one-hot fallback costs one entry and an AvgCE mixture keeps its whole
union: ``topk_counts`` uint16 [N] gives each position's entry count and ``topk_ids`` [E] /
``topk_logprobs`` [E] hold the entries back to back (``k`` is then the most any position
holds). Readers get the same [n, k] arrays either way, PAD_ID / -inf filled.

Shards are written atomically with a sidecar ``shard-NNNNN.json`` (counts, sha256), so a
rerun skips finished shards and several ranks can write disjoint shards of one store; the
manifest lists every shard once the store is finalised. Rows with NaN or +inf scores are
not written: they are counted and listed in the sidecar (``excluded``) and the manifest, so
that every consumer excludes the same rows (the stated policy).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors.numpy import load_file, save_file

from fusion.errors import FusionError
from runrecords.atomic import write_atomic, write_json_atomic
from runrecords.digest import sha256_file
from runrecords.settings import first_difference

FORMAT = "fusebench-topk"
VERSION = 2
PAD_ID = -1
MANIFEST = "manifest.json"


class StoreError(FusionError):
    """A store is missing, corrupt, unfinished or does not match what it is used with."""


# ---------------------------------------------------------------- manifest


class ShardInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    file: str
    sha256: str
    first_row: int
    sequences: int
    positions: int
    excluded: dict[int, str] = Field(default_factory=dict)


# What writing a store fills in; the rest are the settings a store is made with.
_FILLED_IN = {"complete", "shards", "sequences", "positions", "excluded"}


class StoreManifest(BaseModel):
    """What a store holds; two ranks writing one store must agree on every field but shards."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["fusebench-topk"] = FORMAT
    version: int = VERSION
    kind: Literal["topk", "aligned", "fused"] = "topk"
    model: str
    tokenizer_fingerprint: str
    vocab_size: int
    id_bytes: Literal[2, 3, 4] | None = Field(
        None, description="Width of stored ids; the narrowest that fits when left out."
    )
    k: int
    layout: Literal["fixed", "ragged"] = Field(
        "fixed", description="fixed: k entries per position; ragged: up to k (topk_counts)."
    )
    score: Literal["logprob"] = "logprob"
    corpus_fingerprint: str
    num_rows: int
    rows_per_shard: int
    settings: dict[str, Any] = Field(default_factory=dict)
    masked: bool = Field(
        False, description="Shards carry loss_mask (a conversation corpus: responses only)."
    )
    complete: bool = False
    shards: list[ShardInfo] = Field(default_factory=list)
    sequences: int = 0
    positions: int = 0
    excluded: dict[int, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _narrowest_ids(self) -> StoreManifest:
        if self.id_bytes is None:
            self.id_bytes = id_width(self.vocab_size)
        return self

    @property
    def num_shards(self) -> int:
        return max(1, math.ceil(self.num_rows / self.rows_per_shard))

    def same_store(self, other: StoreManifest) -> bool:
        return self.model_dump(exclude=_FILLED_IN) == other.model_dump(exclude=_FILLED_IN)


def id_width(vocab_size: int) -> Literal[2, 3, 4]:
    """Bytes per stored id: the all-ones value must stay free for PAD_ID."""
    if vocab_size < 0xFFFF:
        return 2
    if vocab_size < 0xFFFFFF:
        return 3
    return 4


def pack_ids(ids: np.ndarray, width: int) -> np.ndarray:
    """int ids (PAD_ID for none) -> the stored dtype of ``width`` bytes."""
    if width == 4:
        return np.ascontiguousarray(ids, dtype=np.int32)
    full = (1 << (8 * width)) - 1
    values = np.where(np.asarray(ids) < 0, full, ids).astype("<u4")
    if width == 2:
        return values.astype(np.uint16)
    return np.ascontiguousarray(values.view(np.uint8).reshape(*values.shape, 4)[..., :3])


def unpack_ids(stored: np.ndarray, width: int) -> np.ndarray:
    """Stored ids -> int32 with PAD_ID restored."""
    if width == 4:
        return stored.astype(np.int32, copy=False)
    if width == 2:
        values = stored.astype(np.int32)
        values[stored == 0xFFFF] = PAD_ID
        return values
    wide = np.zeros((*stored.shape[:-1], 4), dtype=np.uint8)
    wide[..., :3] = stored
    values = wide.view("<u4")[..., 0].astype(np.int32)
    values[values == 0xFFFFFF] = PAD_ID
    return values


def read_manifest(path: Path) -> StoreManifest:
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise StoreError(f"{path}: not a top-k store (no {MANIFEST})")
    try:
        return StoreManifest.model_validate_json(file.read_text(encoding="utf-8"))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "manifest"
        raise StoreError(f"{file}: field {where}: {first['msg']}") from None
    except ValueError as err:
        raise StoreError(f"{file}: not valid JSON ({err})") from None


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


# ---------------------------------------------------------------- one sequence


@dataclass
class SequenceTopK:
    """One corpus row as one model saw it (arrays are numpy, dtypes as in the format)."""

    row_id: int
    token_ids: np.ndarray
    topk_ids: np.ndarray
    topk_logprobs: np.ndarray
    nll: np.ndarray
    mean_nll: float = field(default=float("nan"))
    loss_mask: np.ndarray | None = None  # uint8 [n], masked stores only (see the format)

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])

    def problem(self, k: int, ragged: bool = False) -> str | None:
        """Why this row cannot be stored (shapes, NaN, +inf), or None. A ragged store takes
        up to k entries per position, unused ones (PAD_ID) after the used ones."""
        n = len(self)
        if n == 0:
            return "empty sequence"
        shape_ok = (
            self.topk_ids.shape == self.topk_logprobs.shape
            and self.topk_ids.ndim == 2
            and self.topk_ids.shape[0] == n
            and (self.topk_ids.shape[1] <= k if ragged else self.topk_ids.shape[1] == k)
        )
        if not shape_ok:
            want = f"({n}, <={k})" if ragged else f"({n}, {k})"
            return (
                f"top-k arrays shaped {self.topk_ids.shape}/{self.topk_logprobs.shape}, not {want}"
            )
        if ragged:
            pad = self.topk_ids == PAD_ID
            if (pad[:, :-1] & ~pad[:, 1:]).any():
                return "a used top-k entry after an unused one (ragged rows keep entries first)"
        if self.nll.shape != (n,):
            return f"nll shaped {self.nll.shape}, not ({n},)"
        scores = self.topk_logprobs.astype(np.float32)
        real = self.topk_ids != PAD_ID
        if np.isnan(scores).any() or np.isposinf(scores).any():
            return "NaN or +inf in top-k log-probabilities"
        if np.isneginf(scores[real]).any():
            return "-inf log-probability on a real (non-pad) id"
        if not np.isfinite(self.nll.astype(np.float32)).all() or not math.isfinite(self.mean_nll):
            return "NaN or inf in the gold-token NLL"
        if self.loss_mask is not None and (
            self.loss_mask.shape != (n,) or not np.isin(self.loss_mask, (0, 1)).all()
        ):
            return f"loss_mask shaped {self.loss_mask.shape} or not 0/1, not ({n},)"
        return None


def mean_gold_nll(nll: np.ndarray, loss_mask: np.ndarray | None = None) -> float:
    """Mean NLL over positions with a gold next token (all but the last); with a loss mask,
    over the masked-in (response) positions only, as FuseChat computes CE."""
    values = np.asarray(nll, dtype=np.float32)[:-1]
    if loss_mask is not None:
        values = values[np.asarray(loss_mask[:-1]) != 0]
    return float(values.mean()) if values.size else 0.0


# ---------------------------------------------------------------- writing


class StoreWriter:
    """Writes the shards of one store; any number of ranks may write disjoint shards.

    ``StoreWriter(path, manifest)`` creates the store or checks that the existing one was
    made with the same settings (a different model, tokenizer, corpus or k is refused, not
    mixed in). ``done(i)`` tells whether shard i is finished, ``write_shard(i, rows)``
    writes it, and ``finalize()`` (once, after every rank is done) lists the shards.
    """

    def __init__(self, path: Path, manifest: StoreManifest) -> None:
        self.path = Path(path)
        self.manifest = manifest.model_copy(update={"complete": False, "shards": []})
        existing = self.path / MANIFEST
        if existing.is_file():
            old = read_manifest(self.path)
            if not old.same_store(self.manifest):
                diff = first_difference(
                    old.model_dump(), self.manifest.model_dump(), ignore=_FILLED_IN
                )
                raise StoreError(
                    f"{self.path}: holds a store made with other settings ({diff}); "
                    "use another directory"
                )
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json_atomic(existing, self.manifest.model_dump(mode="json"))

    def shard_rows(self, index: int) -> range:
        start = index * self.manifest.rows_per_shard
        return range(start, min(start + self.manifest.rows_per_shard, self.manifest.num_rows))

    def done(self, index: int) -> bool:
        """True when shard ``index`` and its sidecar exist and agree (sha256 checked)."""
        info = _read_sidecar(self.path, index)
        if info is None:
            return False
        data = self.path / info.file
        return data.is_file() and sha256_file(data) == info.sha256

    def write_shard(
        self,
        index: int,
        rows: Sequence[SequenceTopK],
        excluded: dict[int, str] | None = None,
    ) -> ShardInfo:
        """Write one shard atomically; rows that cannot be stored are listed, not dropped silently.

        ``excluded`` names rows the caller leaves out itself, with the reason (for example a
        row another store excluded); every other row of the shard must be given, in order.
        """
        expected = self.shard_rows(index)
        excluded = dict(excluded or {})
        got = [row.row_id for row in rows]
        if got != [row for row in expected if row not in excluded]:
            raise StoreError(
                f"{self.path}: shard {index} must hold rows {expected.start}-"
                f"{expected.stop - 1} in order, got {got[:3]}..."
            )
        k = self.manifest.k
        ragged = self.manifest.layout == "ragged"
        kept: list[SequenceTopK] = []
        for row in rows:
            if (row.loss_mask is not None) != self.manifest.masked:
                has = "a" if row.loss_mask is not None else "no"
                raise StoreError(
                    f"{self.path}: row {row.row_id} has {has} loss_mask, the store "
                    f"masked={self.manifest.masked}: masks are all or none"
                )
            reason = row.problem(k, ragged)
            if reason is None:
                kept.append(row)
            else:
                excluded[row.row_id] = reason
        excluded = dict(sorted(excluded.items()))
        tensors = _pack(kept, k, self.manifest.id_bytes or 4, ragged)
        name = shard_name(index) + ".safetensors"
        write_atomic(self.path / name, lambda tmp: save_file(tensors, str(tmp)))
        info = ShardInfo(
            index=index,
            file=name,
            sha256=sha256_file(self.path / name),
            first_row=expected.start,
            sequences=len(kept),
            positions=int(tensors["token_ids"].shape[0]),
            excluded=excluded,
        )
        write_json_atomic(self.path / f"{shard_name(index)}.json", info.model_dump(mode="json"))
        return info

    def finalize(self) -> StoreManifest:
        """List every shard in the manifest; refuses while a shard is missing."""
        shards: list[ShardInfo] = []
        for index in range(self.manifest.num_shards):
            info = _read_sidecar(self.path, index)
            if info is None:
                raise StoreError(f"{self.path}: shard {index} is not written yet")
            shards.append(info)
        excluded = {row: why for info in shards for row, why in info.excluded.items()}
        final = self.manifest.model_copy(
            update={
                "complete": True,
                "shards": shards,
                "sequences": sum(info.sequences for info in shards),
                "positions": sum(info.positions for info in shards),
                "excluded": excluded,
            }
        )
        write_json_atomic(self.path / MANIFEST, final.model_dump(mode="json"))
        self.manifest = final
        return final


def _read_sidecar(path: Path, index: int) -> ShardInfo | None:
    file = path / f"{shard_name(index)}.json"
    if not file.is_file():
        return None
    try:
        return ShardInfo.model_validate_json(file.read_text(encoding="utf-8"))
    except ValueError:
        return (
            None  # a torn sidecar cannot happen (atomic writes); a hand-edited one redoes the shard
        )


def _pack(
    rows: Sequence[SequenceTopK], k: int, width: int, ragged: bool = False
) -> dict[str, np.ndarray]:
    lengths = [len(row) for row in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    def cat(name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        if not rows:
            return np.zeros(shape, dtype=dtype)
        return np.ascontiguousarray(
            np.concatenate([np.asarray(getattr(r, name)) for r in rows]).astype(dtype)
        )

    tensors = {
        "row_ids": np.asarray([row.row_id for row in rows], dtype=np.int64),
        "offsets": offsets,
        "token_ids": pack_ids(cat("token_ids", np.int64, (0,)), width),
        "nll": cat("nll", np.float16, (0,)),
        "mean_nll": np.asarray([row.mean_nll for row in rows], dtype=np.float32),
        **(
            {"loss_mask": cat("loss_mask", np.uint8, (0,))}
            if rows and rows[0].loss_mask is not None
            else {}
        ),
    }
    if not ragged:
        tensors["topk_ids"] = pack_ids(cat("topk_ids", np.int64, (0, k)), width)
        tensors["topk_logprobs"] = cat("topk_logprobs", np.float16, (0, k))
        return tensors
    ids = [np.asarray(r.topk_ids) for r in rows]
    used = [i != PAD_ID for i in ids]
    flat_ids = (
        np.concatenate([i[u] for i, u in zip(ids, used, strict=True)]) if rows else np.zeros(0)
    )
    flat_lp = (
        np.concatenate([np.asarray(r.topk_logprobs)[u] for r, u in zip(rows, used, strict=True)])
        if rows
        else np.zeros(0)
    )
    counts = np.concatenate([u.sum(axis=1) for u in used]) if rows else np.zeros(0)
    tensors["topk_counts"] = counts.astype(np.uint16)
    tensors["topk_ids"] = pack_ids(flat_ids.astype(np.int64), width)
    tensors["topk_logprobs"] = np.ascontiguousarray(flat_lp.astype(np.float16))
    return tensors


def _unravel(counts: np.ndarray, entries: np.ndarray, k: int, fill: Any, dtype: Any) -> np.ndarray:
    """Ragged entries (``counts`` per position, back to back) -> [n, k], the rest filled."""
    out = np.full((len(counts), k), fill, dtype=dtype)
    rows = np.repeat(np.arange(len(counts)), counts)
    firsts = np.cumsum(counts) - counts
    cols = np.arange(len(entries)) - np.repeat(firsts, counts)
    out[rows, cols] = entries
    return out


# ---------------------------------------------------------------- reading


class TopKStore:
    """A finished store, read shard by shard; each shard's sha256 is checked when first read."""

    def __init__(self, path: Path, *, cache_shards: int = 4) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if not self.manifest.complete:
            raise StoreError(
                f"{self.path}: the store is unfinished (rerun the stage that writes it)"
            )
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_shards = cache_shards
        self._verified: set[int] = set()
        starts, rows = [], []
        for info in self.manifest.shards:
            starts.append(len(rows))
            rows.extend([info.index] * info.sequences)
        self._shard_of = np.asarray(rows, dtype=np.int64)
        self._start = {
            info.index: start for info, start in zip(self.manifest.shards, starts, strict=True)
        }
        self._row_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return self.manifest.sequences

    @property
    def k(self) -> int:
        return self.manifest.k

    def row_ids(self) -> np.ndarray:
        """Corpus row id of every stored sequence, in store order (ascending)."""
        if self._row_ids is None:
            parts = [self._shard(info.index)["row_ids"] for info in self.manifest.shards]
            self._row_ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return self._row_ids

    def sequence(self, i: int) -> SequenceTopK:
        """The i-th stored sequence (0 <= i < len(self))."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        index = int(self._shard_of[i])
        data = self._shard(index)
        local = i - self._start[index]
        lo, hi = int(data["offsets"][local]), int(data["offsets"][local + 1])
        width = self.manifest.id_bytes or 4
        if self.manifest.masked and "loss_mask" not in data:
            raise StoreError(f"{self.path}: shard {index} has no loss_mask; the store is masked")
        if self.manifest.layout == "ragged":
            counts = data["topk_counts"][lo:hi].astype(np.int64)
            start, stop = int(data["entry_offsets"][lo]), int(data["entry_offsets"][hi])
            k = self.manifest.k
            topk_ids = _unravel(
                counts, unpack_ids(data["topk_ids"][start:stop], width), k, PAD_ID, np.int32
            )
            topk_logprobs = _unravel(
                counts, data["topk_logprobs"][start:stop], k, -np.inf, np.float16
            )
        else:
            topk_ids = unpack_ids(data["topk_ids"][lo:hi], width)
            topk_logprobs = data["topk_logprobs"][lo:hi]
        return SequenceTopK(
            row_id=int(data["row_ids"][local]),
            token_ids=unpack_ids(data["token_ids"][lo:hi], width),
            topk_ids=topk_ids,
            topk_logprobs=topk_logprobs,
            nll=data["nll"][lo:hi],
            mean_nll=float(data["mean_nll"][local]),
            loss_mask=data["loss_mask"][lo:hi] if self.manifest.masked else None,
        )

    def __iter__(self) -> Iterator[SequenceTopK]:
        for i in range(len(self)):
            yield self.sequence(i)

    def gold(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(row id, token ids, gold NLL) of every stored sequence, shard by shard, without
        unpacking the top-k arrays (what the strength check reads)."""
        width = self.manifest.id_bytes or 4
        for info in self.manifest.shards:
            data = self._shard(info.index)
            offsets, ids = data["offsets"], unpack_ids(data["token_ids"], width)
            for local, row in enumerate(data["row_ids"]):
                lo, hi = int(offsets[local]), int(offsets[local + 1])
                yield int(row), ids[lo:hi], data["nll"][lo:hi]

    def verify(self) -> None:
        """Check every shard's sha256 now (reading checks each shard on first use anyway), so
        a corrupt store is refused before work that depends on it starts, not in the middle."""
        for info in self.manifest.shards:
            self._check(info)

    def problems(self) -> list[str]:
        """One line per missing or corrupt shard (empty when every sha256 matches)."""
        found = []
        for info in self.manifest.shards:
            try:
                self._check(info)
            except StoreError as err:
                found.append(str(err))
        return found

    def check_tokenizer(self, fingerprint: str, model: str) -> None:
        if fingerprint != self.manifest.tokenizer_fingerprint:
            raise StoreError(
                f"{self.path}: made with another tokenizer than {model}'s "
                f"(fingerprint {self.manifest.tokenizer_fingerprint[:12]} there, {fingerprint[:12]} here)"
            )

    def _check(self, info: ShardInfo) -> None:
        if info.index in self._verified:
            return
        file = self.path / info.file
        if not file.is_file():
            raise StoreError(f"{file}: shard missing")
        if sha256_file(file) != info.sha256:
            raise StoreError(
                f"{file}: sha256 does not match the manifest (corrupt or replaced shard)"
            )
        self._verified.add(info.index)

    def _shard(self, index: int) -> dict[str, np.ndarray]:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        info = next(s for s in self.manifest.shards if s.index == index)
        self._check(info)
        data = load_file(str(self.path / info.file))
        if "topk_counts" in data:  # ragged: where each position's entries start
            data["entry_offsets"] = np.concatenate(
                [[0], np.cumsum(data["topk_counts"].astype(np.int64))]
            )
        self._cache[index] = data
        if len(self._cache) > self._cache_shards:
            self._cache.popitem(last=False)
        return data


def check_same_corpus(stores: Sequence[TopKStore]) -> None:
    """Stores that are aligned or fused together must come from one pre-split corpus."""
    first = stores[0]
    for other in stores[1:]:
        if other.manifest.corpus_fingerprint != first.manifest.corpus_fingerprint:
            raise StoreError(
                f"{other.path} and {first.path} were extracted from different corpora "
                "(corpus fingerprints differ); extract every model from the same corpus"
            )


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of what decides tokenisation: the fast tokenizer's JSON, else the vocabulary."""
    import hashlib

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    special = json.dumps(
        {"bos": tokenizer.bos_token, "eos": tokenizer.eos_token, "unk": tokenizer.unk_token},
        ensure_ascii=False,
    )
    return hashlib.sha256((text + special).encode("utf-8")).hexdigest()
