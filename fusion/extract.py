"""Stage 1: top-k extraction of every model (target and sources) over the pre-split corpus.

One store per model under ``work_dir/stores/<name>``. Ranks: under torchrun (``RANK`` and
``WORLD_SIZE`` set) rank r writes shards r, r+W, ... of every store; rank 0 prepares the corpus
before the others read it and finalises the stores after all are done (gloo barriers).
Finished shards are skipped on a rerun, so an interrupted extraction resumes shard by shard.

For a model whose tokenizer prepends no start token (GPT-2, Qwen2), rank 0 also writes the
store's ``start.safetensors`` (fusion/framing.py): the model's first-token distribution after
the start token alone, which the strength check needs to score a row's first token. It is
written beside the shards, never into them (shards and manifest are the same with or without
it), also into a finished store that lacks it (loading the model for that one forward pass);
the hf backend only (a vllm store goes without it).

Run as ``python -m fusion.extract CONFIG`` under ``torch.distributed.run`` (the CLI's
``--nproc N`` does that); a user error in a worker prints one line and exits 2.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion import corpus as corpus_mod
from fusion.config import FuseConfig, ModelEntry, load_config
from fusion.errors import FusionError
from fusion.framing import Framing, framing, read_start, write_start
from fusion.layout import WorkDir
from fusion.model_dir import LOAD_ERRORS, cannot_load, check_model_dir
from fusion.store import (
    SequenceTopK,
    StoreManifest,
    StoreWriter,
    mean_gold_nll,
    tokenizer_fingerprint,
)
from runrecords.errors import UserError


class ExtractError(FusionError):
    """A corpus row is too long for a model, or a worker failed."""


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> Rank:
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def store_dir(config: FuseConfig, entry: ModelEntry) -> Path:
    return WorkDir(config.work_dir).store(entry.name)


def models(config: FuseConfig) -> list[ModelEntry]:
    """Target first, then the sources (names must be distinct: they name the stores)."""
    entries = [config.target, *config.sources]
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ExtractError(f"model names must differ (they name the stores): {', '.join(names)}")
    return entries


def load_tokenizer(entry: ModelEntry) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        entry.path, revision=entry.revision, trust_remote_code=entry.trust_remote_code
    )


def tokenize_rows(
    tokenizer: Any, corpus: corpus_mod.Corpus, rows: range, entry: ModelEntry, max_length: int
) -> dict[int, list[int]]:
    """Token ids of the rows (special tokens as the tokenizer adds them); an over-long row is
    an error naming it: pre-split the corpus shorter (corpus.max_chars) rather than cut it."""
    texts = [corpus.rows[r] for r in rows]
    encoded = tokenizer(texts, add_special_tokens=True)["input_ids"] if texts else []
    out: dict[int, list[int]] = {}
    for row, ids in zip(rows, encoded, strict=True):
        if len(ids) > max_length:
            fix = (
                "conversations are not split: shorten or drop it, or raise max_length"
                if corpus.conversation
                else "lower corpus.max_chars or raise max_length"
            )
            raise ExtractError(
                f"{corpus.where(row)}: {len(ids)} tokens for {entry.name}, over "
                f"extract.max_length {max_length}; {fix}"
            )
        if not ids:
            raise ExtractError(f"{corpus.where(row)}: no tokens for {entry.name}")
        out[row] = ids
    return out


def response_masks(
    tokenizer: Any,
    corpus: corpus_mod.Corpus,
    rows: range,
    entry: ModelEntry,
    ids: dict[int, list[int]],
) -> dict[int, np.ndarray]:
    """A conversation corpus's per-position loss masks in this model's tokens (``ids``, from
    tokenize_rows): 1 where the next token is part of a response. A row none of whose tokens
    is trained is an error naming it. Empty for a text corpus (nothing masked)."""
    if corpus.spans is None:
        return {}
    from fusion.conversation import token_masks

    try:
        found = token_masks(
            tokenizer, [corpus.rows[r] for r in rows], [corpus.spans[r] for r in rows], entry.name
        )
    except ValueError as err:
        raise ExtractError(str(err)) from None
    out: dict[int, np.ndarray] = {}
    for row, (row_ids, mask) in zip(rows, found, strict=True):
        if row_ids != ids[row]:
            raise ExtractError(
                f"{corpus.where(row)}: {entry.name} tokenizes the row differently with offsets"
            )
        if not mask.any():
            raise ExtractError(
                f"{corpus.where(row)}: no response token to train on for "
                f"{entry.name} (the row has no assistant text after its first "
                "token)"
            )
        out[row] = mask
    return out


def manifest_for(
    config: FuseConfig,
    entry: ModelEntry,
    tokenizer: Any,
    corpus_fp: str,
    num_rows: int,
    vocab_size: int,
    masked: bool = False,
) -> StoreManifest:
    """The store's manifest; its ``dtype`` is the one the backend runs in (``auto`` resolved),
    so stores made in different precisions are never mixed."""
    from fusion.extract_backends import resolved_dtype

    section = config.extract
    return StoreManifest(
        kind="topk",
        model=entry.name,
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
        vocab_size=vocab_size,
        k=section.k,
        corpus_fingerprint=corpus_fp,
        num_rows=num_rows,
        rows_per_shard=section.rows_per_shard,
        masked=masked,
        settings={
            "backend": section.backend,
            "dtype": resolved_dtype(section.dtype, _device_type(config)),
            "max_length": section.max_length,
            "revision": entry.revision,
        },
    )


def model_vocab_size(entry: ModelEntry) -> int:
    """The logits width from the model's config (the store's id range), without the weights."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(
        entry.path, revision=entry.revision, trust_remote_code=entry.trust_remote_code
    )
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.vocab_size)


def check_models(config: FuseConfig) -> None:
    """Every local model's safetensors files are whole and its config.json agrees with them
    (fusion/model_dir.py); with the vllm backend, every model also takes extract.k and
    extract.max_length (read from config.json and the safetensors headers: run before
    anything is written or loaded, so a bad setting costs one line, not a load)."""
    for entry in models(config):
        check_model_dir(Path(entry.path))
    if config.extract.backend == "vllm":
        from fusion.extract_backends.vllm_plan import plan

        for entry in models(config):
            plan(entry, config.extract)


def check_rows(config: FuseConfig, corpus: corpus_mod.Corpus) -> None:
    """Every row fits every model (run before launching workers: one clear error, once)."""
    for entry in models(config):
        tokenizer = load_tokenizer(entry)
        rows = range(len(corpus))
        ids = tokenize_rows(tokenizer, corpus, rows, entry, config.extract.max_length)
        response_masks(tokenizer, corpus, rows, entry, ids)


def _quiet(text: str) -> None:
    return None


def _device_type(config: FuseConfig) -> str:
    """cuda or cpu: where the backend runs (vllm: always CUDA)."""
    if config.extract.backend == "vllm":
        return "cuda"
    return _device(config).split(":")[0]


def _device(config: FuseConfig) -> str:
    import torch

    if config.extract.device:
        return config.extract.device
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def extract_model(
    config: FuseConfig,
    entry: ModelEntry,
    corpus: corpus_mod.Corpus,
    rank: Rank,
    progress: bool = True,
    after_shard: Callable[[int], None] | None = None,
    say: Callable[[str], None] = _quiet,
) -> StoreWriter:
    """Write this rank's unfinished shards of one model's store; its throughput to ``say``."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    section = config.extract
    tokenizer = load_tokenizer(entry)
    manifest = manifest_for(
        config,
        entry,
        tokenizer,
        corpus.fingerprint,
        len(corpus),
        model_vocab_size(entry),
        masked=corpus.conversation,
    )
    writer = StoreWriter(store_dir(config, entry), manifest)
    mine = range(rank.rank, manifest.num_shards, rank.world)
    pending = [s for s in mine if not writer.done(s)]
    console = Console(stderr=True)
    frame = framing(tokenizer)
    if not pending:
        write_start_sidecar(config, entry, writer, frame, rank, None, say)
        return writer
    backend = _backend(config, entry, manifest)
    write_start_sidecar(config, entry, writer, frame, rank, backend, say)
    token_ids = {
        s: tokenize_rows(tokenizer, corpus, writer.shard_rows(s), entry, section.max_length)
        for s in pending
    }
    masks = {
        row: mask
        for s in pending
        for row, mask in response_masks(
            tokenizer, corpus, writer.shard_rows(s), entry, token_ids[s]
        ).items()
    }
    total = sum(len(ids) for rows in token_ids.values() for ids in rows.values())
    started, done_tokens = time.perf_counter(), 0
    columns = (
        TextColumn(f"{entry.name} [rank {rank.rank}]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} tokens"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not progress or rank.rank != 0) as bar:
        task = bar.add_task("extract", total=total)
        for shard in pending:
            rows = token_ids[shard]
            order = sorted(rows, key=lambda r: len(rows[r]))  # similar lengths per batch
            scored: dict[int, SequenceTopK] = {}
            step = backend.batch_rows or max(1, len(order))  # None: the whole shard
            for start in range(0, len(order), step):
                chunk = order[start : start + step]
                for row, (ids, lps, nll) in zip(
                    chunk, backend.score([rows[r] for r in chunk]), strict=True
                ):
                    nll16 = nll.astype(np.float16)
                    scored[row] = SequenceTopK(
                        row_id=row,
                        token_ids=np.asarray(rows[row], dtype=np.int32),
                        topk_ids=ids,
                        topk_logprobs=lps.astype(np.float16),
                        nll=nll16,
                        mean_nll=mean_gold_nll(nll, masks.get(row)),
                        loss_mask=masks.get(row),
                    )
                    bar.advance(task, len(rows[row]))
            writer.write_shard(shard, [scored[r] for r in writer.shard_rows(shard)])
            done_tokens += sum(len(ids) for ids in rows.values())
            if after_shard is not None:
                after_shard(shard)
    seconds = max(time.perf_counter() - started, 1e-9)
    say(
        f"{entry.name} rank {rank.rank}: {done_tokens} tokens in {seconds:.1f} s "
        f"({done_tokens / seconds:,.0f} tokens/s)"
    )
    return writer


def _backend(config: FuseConfig, entry: ModelEntry, manifest: StoreManifest) -> Any:
    """The configured backend for one model, its logits as wide as the store's vocabulary."""
    from safetensors import SafetensorError

    from fusion.extract_backends import make_backend

    section = config.extract
    try:
        backend = make_backend(section.backend, entry, section, _device(config))
    except UserError:
        raise
    except (*LOAD_ERRORS, SafetensorError) as err:  # one line naming the model (model_dir.py)
        raise cannot_load(f"{entry.name} ({entry.path})", err) from None
    if backend.vocab_size != manifest.vocab_size:
        raise ExtractError(
            f"{entry.name}: the model has {backend.vocab_size} logits, its "
            f"config says {manifest.vocab_size}"
        )
    return backend


def write_start_sidecar(
    config: FuseConfig,
    entry: ModelEntry,
    writer: StoreWriter,
    frame: Framing,
    rank: Rank,
    backend: Any | None,
    say: Callable[[str], None] = _quiet,
) -> Path | None:
    """Rank 0 writes the store's start sidecar (fusion/framing.py) where the tokenizer
    prepends no start token and the file is missing or does not match the store: one forward
    pass of ``[start]`` (``backend`` when this rank has one loaded, else the model is loaded
    for it). Returns the file written, or None. The hf backend only."""
    if rank.rank != 0 or not frame.needs_start or config.extract.backend != "hf":
        return None
    assert frame.start is not None
    found, _ = read_start(writer.path, writer.manifest, frame.start)
    if found is not None:
        return None
    backend = backend or _backend(config, entry, writer.manifest)
    logprobs = backend.start_logprobs(frame.start)
    path = write_start(writer.path, writer.manifest, frame.start, logprobs)
    say(f"{entry.name}: first-token distribution after the start token {frame.start}: {path}")
    return path


def _barrier(rank: Rank) -> None:
    if rank.world > 1:
        import torch.distributed as dist

        dist.barrier()


def extract(
    config: FuseConfig,
    rank: Rank | None = None,
    progress: bool = True,
    after_shard: Callable[[int], None] | None = None,
    say: Callable[[str], None] = _quiet,
) -> list[Path]:
    """Extract every model; returns the store directories (finalised by rank 0). Each rank's
    throughput per model goes to ``say``."""
    rank = rank or Rank.from_env()
    if rank.world > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        if not torch.cuda.is_available():
            # The cores shared among the ranks, unless OMP_NUM_THREADS says otherwise (as
            # `OMP_NUM_THREADS=1 make demo` does to reproduce the demo on a bigger machine).
            threads = os.environ.get("OMP_NUM_THREADS", "")
            fair = max(1, (os.cpu_count() or 1) // rank.world)
            torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) else fair)
    try:
        if rank.rank == 0:
            corpus_mod.prepare(config.corpus, config.work_dir, chat_model=config.target)
        _barrier(rank)
        corpus = corpus_mod.load(config.work_dir)
        writers = [
            extract_model(config, entry, corpus, rank, progress, after_shard, say)
            for entry in models(config)
        ]
        _barrier(rank)
        if rank.rank == 0:
            for writer in writers:
                writer.finalize()
        _barrier(rank)
    finally:
        if rank.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return [store_dir(config, entry) for entry in models(config)]


def main(argv: list[str] | None = None) -> int:
    """Worker entry point for ``torch.distributed.run``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        extract(
            load_config(Path(args[0])),
            progress="--no-progress" not in args[1:],
            say=lambda text: print(text, file=sys.stderr, flush=True),
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
