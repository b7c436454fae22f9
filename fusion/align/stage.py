"""Stage 2: align every source to the target, map vocabularies, project, fuse.

Sub-steps, each skipped when its output exists and was made from the same inputs:

    work_dir/align/<source>/key.json            what the alignments were made from
    work_dir/align/<source>/paths-NNNNN.safetensors
                                                DTW paths of a shard's rows, and the shard's
                                                aligned-pair counts (COO), written atomically
    work_dir/align/<source>/vocab-map.safetensors + vocab-map.json
                                                source id -> target id (-1 unmapped)
    work_dir/fused/                             the fused-targets store (kind ``fused``)
    work_dir/align/report.json                  how each position was projected, per source

The fused store is what training reads: the target's own token ids, NLL and mean NLL, and
per position up to k (id, log-probability) entries of the fused distribution in V_T. A row
that any input store excluded (NaN/inf scores) is excluded from the fused store too, with
the reason: the policy is to drop the row everywhere, never to fuse it from fewer models.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from fusion.align.dtw import align
from fusion.align.project import (
    EMPTY,
    FROM_SOURCE,
    ONE_HOT,
    ONE_TO_MANY,
    log_normalise,
    project_row,
)
from fusion.align.tokens import Vocabulary
from fusion.align.vocab import UNMAPPED, PairCounts, build_map, coverage
from fusion.config import FuseConfig, ModelEntry
from fusion.corpus import load as load_corpus
from fusion.errors import FusionError
from fusion.extract import load_tokenizer, models, store_dir
from fusion.files import write_atomic, write_json_atomic
from fusion.fuse import Candidate, fuse_row
from fusion.store import (
    SequenceTopK,
    StoreError,
    StoreManifest,
    StoreWriter,
    TopKStore,
    check_same_corpus,
    read_manifest,
    tokenizer_fingerprint,
)

OUTCOMES = {FROM_SOURCE: "from_source", ONE_TO_MANY: "one_to_many", ONE_HOT: "one_hot",
            EMPTY: "empty_last_position"}  # fmt: skip


def fused_dir(config: FuseConfig) -> Path:
    return config.work_dir / "fused"


def store_key(store: TopKStore) -> str:
    """Identity of a finished store's content: its shards' sha256 and its tokenizer."""
    parts = [store.manifest.tokenizer_fingerprint, *(s.sha256 for s in store.manifest.shards)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Inputs:
    """The finished stores and tokenizers of one fusion run, checked against each other."""

    def __init__(self, config: FuseConfig) -> None:
        self.config = config
        corpus = load_corpus(config.work_dir)
        self.entries: list[ModelEntry] = models(config)
        self.stores: dict[str, TopKStore] = {}
        self.vocabs: dict[str, Vocabulary] = {}
        for entry in self.entries:
            path = store_dir(config, entry)
            if not (path / "manifest.json").is_file():
                raise StoreError(
                    f"{path}: no store for {entry.name} (run `fusebench fuse extract`)"
                )
            store = TopKStore(path)
            store.verify()
            tokenizer = load_tokenizer(entry)
            store.check_tokenizer(tokenizer_fingerprint(tokenizer), entry.name)
            self.stores[entry.name] = store
            self.vocabs[entry.name] = Vocabulary.from_tokenizer(tokenizer)
        check_same_corpus(list(self.stores.values()))
        first = next(iter(self.stores.values()))
        if first.manifest.corpus_fingerprint != corpus.fingerprint:
            raise StoreError(f"{first.path}: extracted from another corpus than {corpus.directory}")
        self.num_rows = len(corpus)
        self.index = {name: {int(r): i for i, r in enumerate(s.row_ids())}
                      for name, s in self.stores.items()}  # fmt: skip

    @property
    def target(self) -> str:
        return self.entries[0].name

    def excluded(self, row: int) -> str | None:
        """Why a row is missing from some store, or None."""
        for name, store in self.stores.items():
            if row not in self.index[name]:
                why = store.manifest.excluded.get(row, "missing")
                return f"excluded from the {name} store: {why}"
        return None

    def sequence(self, name: str, row: int) -> SequenceTopK:
        return self.stores[name].sequence(self.index[name][row])


def _progress(label: str, total: int, enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)  # fmt: skip
    return bar, bar.add_task(label, total=total)


def _fresh_dir(directory: Path, key: dict[str, Any], say: Any) -> None:
    """Make ``directory`` hold outputs of ``key``: stale outputs (other inputs) are removed."""
    file = directory / "key.json"
    if file.is_file() and json.loads(file.read_text(encoding="utf-8")) == key:
        return
    if directory.exists():
        say(f"{directory}: inputs changed, recomputing")
        shutil.rmtree(directory)
    write_json_atomic(file, key)


def alignments(inputs: Inputs, source: str, progress: bool, say: Any) -> Path:
    """DTW paths and aligned-pair counts of every row, shard by shard (resumable)."""
    config = inputs.config
    directory = config.work_dir / "align" / source
    key = {"target": store_key(inputs.stores[inputs.target]),
           "source": store_key(inputs.stores[source])}  # fmt: skip
    _fresh_dir(directory, key, say)
    per_shard = config.extract.rows_per_shard
    shards = range(-(-inputs.num_rows // per_shard))
    tv, sv = inputs.vocabs[inputs.target], inputs.vocabs[source]
    bar, task = _progress(f"align {source}", inputs.num_rows, progress)
    with bar:
        for shard in shards:
            file = directory / f"paths-{shard:05d}.safetensors"
            rows = range(shard * per_shard, min((shard + 1) * per_shard, inputs.num_rows))
            if file.is_file():
                bar.advance(task, len(rows))
                continue
            counts, row_ids, offsets, paths = PairCounts(), [], [0], []
            for row in rows:
                bar.advance(task)
                if inputs.excluded(row):
                    continue
                t_ids = inputs.sequence(inputs.target, row).token_ids
                s_ids = inputs.sequence(source, row).token_ids
                path = align(tv.keys(t_ids), sv.keys(s_ids))
                counts.add(t_ids, s_ids, path)
                row_ids.append(row)
                paths.append(path)
                offsets.append(offsets[-1] + len(path))
            coo = counts.to_arrays()
            tensors = {"row_ids": np.asarray(row_ids, dtype=np.int64),
                       "offsets": np.asarray(offsets, dtype=np.int64),
                       "pairs": (np.concatenate(paths) if paths
                                 else np.zeros((0, 2), np.int32)).astype(np.int32),
                       **{f"counts_{name}": values for name, values in coo.items()}}  # fmt: skip
            write_atomic(file, lambda tmp, t=tensors: save_file(t, str(tmp)))
    return directory


def read_paths(directory: Path) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for file in sorted(directory.glob("paths-*.safetensors")):
        data = load_file(str(file))
        offsets = data["offsets"]
        for i, row in enumerate(data["row_ids"].tolist()):
            out[row] = data["pairs"][offsets[i] : offsets[i + 1]]
    return out


def vocabulary_map(inputs: Inputs, source: str, directory: Path, progress: bool) -> np.ndarray:
    """The source -> target map of the configured method (cached beside the alignments)."""
    method = inputs.config.align.vocab_mapping
    key = {"method": method, "alignments": json.loads((directory / "key.json").read_text())}
    meta, file = directory / "vocab-map.json", directory / "vocab-map.safetensors"
    if meta.is_file() and file.is_file() and json.loads(meta.read_text())["key"] == key:
        return load_file(str(file))["vmap"]
    counts = None
    if method == "statistics":
        counts = PairCounts()
        for part in sorted(directory.glob("paths-*.safetensors")):
            data = load_file(str(part))
            counts.counts_update(data)
    sv, tv = inputs.vocabs[source], inputs.vocabs[inputs.target]
    bar, task = _progress(f"vocabulary map {source} ({method})", len(sv), progress)
    with bar:
        vmap = build_map(method, sv, tv, counts, progress=lambda n: bar.advance(task, n))
        bar.update(task, completed=len(sv))
    width = max(len(vmap), inputs.stores[source].manifest.vocab_size)
    vmap = np.concatenate([vmap, np.full(width - len(vmap), UNMAPPED, np.int32)])
    write_atomic(file, lambda tmp: save_file({"vmap": vmap}, str(tmp)))
    write_json_atomic(meta, {"key": key, "coverage": coverage(vmap[: len(sv)])})
    return vmap


def _fused_manifest(inputs: Inputs) -> StoreManifest:
    config = inputs.config
    target = inputs.stores[inputs.target].manifest
    return StoreManifest(
        kind="fused", model=inputs.target, tokenizer_fingerprint=target.tokenizer_fingerprint,
        vocab_size=target.vocab_size, k=config.extract.k,
        corpus_fingerprint=target.corpus_fingerprint, num_rows=inputs.num_rows,
        rows_per_shard=config.extract.rows_per_shard, masked=target.masked,
        settings={"method": config.fuse.method, "temperature": config.fuse.temperature,
                  "vocab_mapping": config.align.vocab_mapping,
                  "inputs": {name: store_key(s) for name, s in inputs.stores.items()}},
    )  # fmt: skip


def run_align(config: FuseConfig, *, progress: bool = True, overwrite: bool = False,
              say: Any = print) -> Path:  # fmt: skip
    """Every sub-step of stage 2; returns the fused store's directory."""
    inputs = Inputs(config)
    out = fused_dir(config)
    manifest = _fused_manifest(inputs)
    if (out / "manifest.json").is_file():
        old = read_manifest(out)
        if old.complete and old.same_store(manifest):
            say(f"fused store up to date: {out}")
            return out
        if not old.same_store(manifest):
            if not overwrite:
                raise StoreError(f"{out}: a fused store made with other settings or inputs is "
                                 "there; pass --overwrite to replace it")  # fmt: skip
            shutil.rmtree(out)
    sources = [e.name for e in inputs.entries[1:]]
    paths, vmaps = {}, {}
    for source in sources:
        directory = alignments(inputs, source, progress, say)
        paths[source] = read_paths(directory)
        vmaps[source] = vocabulary_map(inputs, source, directory, progress)
    report = _fuse(inputs, manifest, paths, vmaps, progress)
    write_json_atomic(config.work_dir / "align" / "report.json", report)
    return out


def _fuse(inputs: Inputs, manifest: StoreManifest, paths: dict[str, dict[int, np.ndarray]],
          vmaps: dict[str, np.ndarray], progress: bool) -> dict[str, Any]:  # fmt: skip
    config = inputs.config
    writer = StoreWriter(fused_dir(config), manifest)
    method, k = config.fuse.method, config.extract.k
    temperature = config.fuse.temperature or 1.0
    target, tv = inputs.target, inputs.vocabs[inputs.target]
    names = [e.name for e in inputs.entries]
    outcome_counts = {s: dict.fromkeys(OUTCOMES.values(), 0) for s in names[1:]}
    chosen = dict.fromkeys(names, 0)
    bar, task = _progress(f"fuse ({method})", inputs.num_rows, progress)
    with bar:
        for shard in range(manifest.num_shards):
            rows = writer.shard_rows(shard)
            if writer.done(shard):
                bar.advance(task, len(rows))
                continue
            kept, excluded = [], {}
            for row in rows:
                bar.advance(task)
                why = inputs.excluded(row)
                if why:
                    excluded[row] = why
                    continue
                own = inputs.sequence(target, row)
                cands = [Candidate(own.topk_ids.astype(np.int32),
                                   log_normalise(own.topk_logprobs.astype(np.float32)),
                                   own.mean_nll)]  # fmt: skip
                for source in names[1:]:
                    seq = inputs.sequence(source, row)
                    proj = project_row(tv, inputs.vocabs[source], vmaps[source], own.token_ids,
                                       seq.token_ids, seq.topk_ids, seq.topk_logprobs,
                                       paths[source][row])  # fmt: skip
                    for code, count in zip(
                        *np.unique(proj.outcome, return_counts=True), strict=True
                    ):
                        outcome_counts[source][OUTCOMES[int(code)]] += int(count)
                    cands.append(Candidate(proj.ids, proj.logprobs, seq.mean_nll))
                if method == "min_ce":
                    chosen[names[int(np.argmin([c.ce for c in cands]))]] += 1
                ids, logprobs = fuse_row(cands, method, k, temperature)
                kept.append(SequenceTopK(row_id=row, token_ids=own.token_ids, topk_ids=ids,
                                         topk_logprobs=logprobs.astype(np.float16),
                                         nll=own.nll, mean_nll=own.mean_nll,
                                         loss_mask=own.loss_mask))  # fmt: skip
            writer.write_shard(shard, kept, excluded)
    final = writer.finalize()
    report: dict[str, Any] = {"method": method, "positions": final.positions,
                              "sequences": final.sequences, "excluded": final.excluded,
                              "projection": outcome_counts}  # fmt: skip
    if method == "min_ce":
        report["rows_per_model"] = chosen  # (rows of this run; a resumed run counts its part)
    return report


__all__ = ["run_align", "fused_dir", "FusionError"]
