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
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from fusion.align.dtw import align
from fusion.align.project import (
    EMPTY,
    FROM_SOURCE,
    OFFSET_MISMATCH,
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
from fusion.fuse import (
    Candidate,
    absolute,
    aligned_ce,
    fuse_row,
    uses_aligned_ce,
    weighting,
    weights,
)
from fusion.layout import WorkDir
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
from runrecords.atomic import write_atomic, write_json_atomic

# Projected positions (from_source / one_to_many) where gold-prefix mass moved onto the gold.
GOLD_PREFIX = "gold_prefix_moved"
OUTCOMES = {
    FROM_SOURCE: "from_source",
    ONE_TO_MANY: "one_to_many",
    ONE_HOT: "one_hot",
    OFFSET_MISMATCH: "one_hot_offset_mismatch",
    EMPTY: "empty_last_position",
}
# The row criteria reported side by side whatever the configured method (the native CE of
# each model on its own tokens, and the aligned CE of each distribution on the target's).
CRITERIA = ("min_ce", "min_ce_aligned")


def fused_dir(config: FuseConfig) -> Path:
    return WorkDir(config.work_dir).fused


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
        self.texts = corpus.rows
        self.groups = [corpus.group(r) for r in range(len(corpus))]
        self.index = {
            name: {int(r): i for i, r in enumerate(s.row_ids())} for name, s in self.stores.items()
        }

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

    bar = Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
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
    directory = WorkDir(config.work_dir).alignments(source)
    key = {
        "target": store_key(inputs.stores[inputs.target]),
        "source": store_key(inputs.stores[source]),
        "version": ALIGNMENTS_VERSION,
    }
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
            tensors = {
                "row_ids": np.asarray(row_ids, dtype=np.int64),
                "offsets": np.asarray(offsets, dtype=np.int64),
                "pairs": (np.concatenate(paths) if paths else np.zeros((0, 2), np.int32)).astype(
                    np.int32
                ),
                **{f"counts_{name}": values for name, values in coo.items()},
            }
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


# Bump when the mapping rules change, so that maps cached by older code are recomputed.
VOCAB_MAP_VERSION = 2
# Bump when what the alignment files hold changes (2: the tie rule, and pair counts saved
# contiguous; version 1 files hold corrupt counts).
ALIGNMENTS_VERSION = 2


def vocabulary_map(
    inputs: Inputs, source: str, directory: Path, progress: bool
) -> tuple[np.ndarray, dict[str, int]]:
    """The source -> target map of the configured method (cached beside the alignments),
    and how many source tokens each rule mapped."""
    method = inputs.config.align.vocab_mapping
    key = {
        "method": method,
        "version": VOCAB_MAP_VERSION,
        "alignments": json.loads((directory / "key.json").read_text()),
    }
    meta, file = directory / "vocab-map.json", directory / "vocab-map.safetensors"
    if meta.is_file() and file.is_file():
        cached = json.loads(meta.read_text())
        if cached["key"] == key:
            return load_file(str(file))["vmap"], cached["rules"]
    counts = None
    if method == "statistics":
        counts = PairCounts()
        for part in sorted(directory.glob("paths-*.safetensors")):
            data = load_file(str(part))
            counts.counts_update(data)
    sv, tv = inputs.vocabs[source], inputs.vocabs[inputs.target]
    bar, task = _progress(f"vocabulary map {source} ({method})", len(sv), progress)
    with bar:
        built = build_map(method, sv, tv, counts, progress=lambda n: bar.advance(task, n))
        bar.update(task, completed=len(sv))
    width = max(len(built.ids), inputs.stores[source].manifest.vocab_size)
    vmap = np.concatenate([built.ids, np.full(width - len(built.ids), UNMAPPED, np.int32)])
    rules = built.rule_counts()
    write_atomic(file, lambda tmp: save_file({"vmap": vmap}, str(tmp)))
    write_json_atomic(meta, {"key": key, "coverage": coverage(vmap[: len(sv)]), "rules": rules})
    return vmap, rules


def fused_width(config: FuseConfig, models: int) -> int:
    """Most entries a fused position can hold: k for MinCE; for the averages the union of
    every model's k entries, or ``fuse.keep``."""
    k = config.extract.k
    if weighting(config.fuse.method) == "min_ce":
        return k
    return min(config.fuse.keep or k * models, k * models)


def _fused_manifest(inputs: Inputs) -> StoreManifest:
    config = inputs.config
    target = inputs.stores[inputs.target].manifest
    return StoreManifest(
        kind="fused",
        model=inputs.target,
        tokenizer_fingerprint=target.tokenizer_fingerprint,
        vocab_size=target.vocab_size,
        k=fused_width(config, len(inputs.entries)),
        layout="ragged",
        corpus_fingerprint=target.corpus_fingerprint,
        num_rows=inputs.num_rows,
        rows_per_shard=config.extract.rows_per_shard,
        masked=target.masked,
        settings={
            "method": config.fuse.method,
            "temperature": config.fuse.temperature,
            "keep": config.fuse.keep,
            "tail": config.fuse.tail,
            "include_target": config.fuse.include_target,
            "vocab_mapping": config.align.vocab_mapping,
            "gold_prefix": config.align.gold_prefix,
            "offset_check": True,
            # keep: source ids mapped to one target id are summed (a store made before keeps
            # the first only, and is not taken for this one).
            **({"repeats": "summed"} if config.fuse.tail == "keep" else {}),
            "versions": {"alignments": ALIGNMENTS_VERSION, "vocab_map": VOCAB_MAP_VERSION},
            "inputs": {name: store_key(s) for name, s in inputs.stores.items()},
        },
    )


def run_align(
    config: FuseConfig,
    *,
    progress: bool = True,
    overwrite: bool = False,
    say: Any = lambda text: None,
) -> Path:
    """Every sub-step of stage 2; returns the fused store's directory. Status lines go to
    ``say`` (``fusion.pipeline``'s reporter; nothing by default)."""
    inputs = Inputs(config)
    out = fused_dir(config)
    manifest = _fused_manifest(inputs)
    if (out / "manifest.json").is_file():
        old = read_manifest(out)
        if old.complete and old.same_store(manifest):
            corrupt = TopKStore(out).problems()
            if not corrupt:
                say(f"fused store up to date: {out}")  # every shard's sha256 checked
                return out
            # The writer redoes exactly the shards whose sha256 does not match their sidecar.
            say(f"fused store: {len(corrupt)} corrupt shard(s), redoing: {'; '.join(corrupt)}")
        if not old.same_store(manifest):
            if not overwrite:
                raise StoreError(
                    f"{out}: a fused store made with other settings or inputs is "
                    "there; pass --overwrite to replace it"
                )
            shutil.rmtree(out)
    sources = [e.name for e in inputs.entries[1:]]
    paths, vmaps, rules = {}, {}, {}
    for source in sources:
        directory = alignments(inputs, source, progress, say)
        paths[source] = read_paths(directory)
        vmaps[source], rules[source] = vocabulary_map(inputs, source, directory, progress)
    report = _fuse(inputs, manifest, paths, vmaps, progress)
    report["vocabulary_map"] = {"method": config.align.vocab_mapping, "tokens_per_rule": rules}
    write_json_atomic(WorkDir(config.work_dir).align_report, report)
    return out


def _row_candidates(
    inputs: Inputs,
    row: int,
    paths: dict[str, dict[int, np.ndarray]],
    vmaps: dict[str, np.ndarray],
    outcome_counts: dict[str, dict[str, int]],
) -> tuple[SequenceTopK, list[Candidate], list[np.ndarray], list[float] | None]:
    """The target's own and each source's projected distribution on one row (ce: the native
    per-token CE, log-probabilities renormalised over the kept entries), the probability
    those entries had in their model per position, and the aligned CE of each (``aligned_ce``; None when no position has a
    projection of every source's own, and then the native CE decides)."""
    target, tv = inputs.target, inputs.vocabs[inputs.target]
    text = inputs.texts[row]
    own = inputs.sequence(target, row)
    own_lp = own.topk_logprobs.astype(np.float32)
    cands = [Candidate(own.topk_ids.astype(np.int32), log_normalise(own_lp), _row_ce(own))]
    own_mass = np.exp(own_lp.astype(np.float64)).sum(axis=1)
    masses = [np.minimum(own_mass, 1.0)]
    target_ends = tv.end_offsets(own.token_ids, text)
    common = np.ones(len(own) - 1, dtype=bool)
    if own.loss_mask is not None:  # conversations: responses only, as the native CE
        common &= own.loss_mask[:-1].astype(bool)
    for entry in inputs.entries[1:]:
        source, sv = entry.name, inputs.vocabs[entry.name]
        seq = inputs.sequence(source, row)
        proj = project_row(
            tv,
            sv,
            vmaps[source],
            own.token_ids,
            seq.token_ids,
            seq.topk_ids,
            seq.topk_logprobs,
            paths[source][row],
            target_ends,
            sv.end_offsets(seq.token_ids, text),
            gold_prefix=inputs.config.align.gold_prefix,
            sum_repeats=inputs.config.fuse.tail == "keep",
        )
        for code, count in zip(*np.unique(proj.outcome, return_counts=True), strict=True):
            outcome_counts[source][OUTCOMES[int(code)]] += int(count)
        if proj.completed is not None:
            outcome_counts[source][GOLD_PREFIX] += int(proj.completed.sum())
        common &= np.isin(proj.outcome[:-1], (FROM_SOURCE, ONE_TO_MANY))
        cands.append(Candidate(proj.ids, proj.logprobs, _row_ce(seq)))
        masses.append(np.minimum(proj.mass, 1.0))
    positions = np.flatnonzero(common)
    if not positions.size:
        return own, cands, masses, None
    vocab_size = inputs.stores[target].manifest.vocab_size
    return own, cands, masses, aligned_ce(cands, masses, own.token_ids, positions, vocab_size)


def _row_ce(seq: SequenceTopK) -> float:
    """A model's native row CE; +inf when its tokenisation of the row has no gold position
    (a one-token row): its mean of nothing is stored as 0, which must not win MinCE."""
    return seq.mean_nll if len(seq) > 1 else math.inf


def _new_stats(names: list[str], groups: list[str]) -> dict[str, Any]:
    """One shard's fusion statistics (summed over shards for the report); ``rows_won_by_group``
    splits ``rows_won`` by corpus group (fusion/strength.py reports it)."""
    return {
        "projection": {s: dict.fromkeys([*OUTCOMES.values(), GOLD_PREFIX], 0) for s in names[1:]},
        "rows_won": {criterion: dict.fromkeys(names, 0) for criterion in CRITERIA},
        "rows_won_by_group": {
            criterion: {g: dict.fromkeys(names, 0) for g in groups} for criterion in CRITERIA
        },
        "weight_sum": dict.fromkeys(names, 0.0),
        "rows": 0,
        "no_common": 0,
        "dropped": 0.0,
        "dropped_max": 0.0,
    }


def _add_stats(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add_stats(total[key], value)
        elif key == "dropped_max":
            total[key] = max(total[key], value)
        else:
            total[key] += value


def _stats_file(directory: Path, shard: int) -> Path:
    """Beside the shard, inside the fused store: replaced together with it."""
    return directory / f"stats-{shard:05d}.json"


def _fuse(
    inputs: Inputs,
    manifest: StoreManifest,
    paths: dict[str, dict[int, np.ndarray]],
    vmaps: dict[str, np.ndarray],
    progress: bool,
) -> dict[str, Any]:
    config = inputs.config
    out = fused_dir(config)
    writer = StoreWriter(out, manifest)
    method, keep = config.fuse.method, config.fuse.keep
    temperature = config.fuse.temperature or 1.0
    names = [e.name for e in inputs.entries]
    groups = sorted(set(inputs.groups))
    bar, task = _progress(f"fuse ({method})", inputs.num_rows, progress)
    with bar:
        for shard in range(manifest.num_shards):
            rows = writer.shard_rows(shard)
            if writer.done(shard) and _stats_file(out, shard).is_file():
                bar.advance(task, len(rows))
                continue
            stats = _new_stats(names, groups)
            kept, excluded = [], {}
            for row in rows:
                bar.advance(task)
                why = inputs.excluded(row)
                if why:
                    excluded[row] = why
                    continue
                own, cands, masses, aligned = _row_candidates(
                    inputs, row, paths, vmaps, stats["projection"]
                )
                native = [c.ce for c in cands]
                if aligned is None:
                    stats["no_common"] += 1
                    aligned = native
                group = inputs.groups[row]
                for criterion, ces in (("min_ce", native), ("min_ce_aligned", aligned)):
                    winner = names[int(np.argmin(ces))]
                    stats["rows_won"][criterion][winner] += 1
                    stats["rows_won_by_group"][criterion][group][winner] += 1
                if uses_aligned_ce(method):
                    cands = [
                        Candidate(c.ids, c.logprobs, ce)
                        for c, ce in zip(cands, aligned, strict=True)
                    ]
                if config.fuse.tail == "keep":
                    cands = [absolute(c, m) for c, m in zip(cands, masses, strict=True)]
                include = config.fuse.include_target
                for name, w in zip(
                    names,
                    weights([c.ce for c in cands], method, temperature, include),
                    strict=True,
                ):
                    stats["weight_sum"][name] += float(w)
                ids, logprobs, lost = fuse_row(cands, method, keep, temperature, include)
                stats["rows"] += 1
                stats["dropped"] += float(lost.sum())
                stats["dropped_max"] = max(stats["dropped_max"], float(lost.max(initial=0.0)))
                kept.append(
                    SequenceTopK(
                        row_id=row,
                        token_ids=own.token_ids,
                        topk_ids=ids,
                        topk_logprobs=logprobs.astype(np.float16),
                        nll=own.nll,
                        mean_nll=own.mean_nll,
                        loss_mask=own.loss_mask,
                    )
                )
            # Statistics first: a crash between the two redoes the shard and rewrites them.
            write_json_atomic(_stats_file(out, shard), stats)
            writer.write_shard(shard, kept, excluded)
    final = writer.finalize()
    # Summed over every shard's file, so a resumed run reports the whole store.
    total = _new_stats(names, groups)
    for shard in range(manifest.num_shards):
        _add_stats(total, json.loads(_stats_file(out, shard).read_text(encoding="utf-8")))
    rows_fused = total["rows"]
    report: dict[str, Any] = {
        "method": method,
        "positions": final.positions,
        "sequences": final.sequences,
        "excluded": final.excluded,
        "projection": total["projection"],
        "rows_won": total["rows_won"],
        "rows_won_by_group": total["rows_won_by_group"],
        "rows_without_common_positions": total["no_common"],
        "mean_weight": {
            n: (w / rows_fused if rows_fused else 0.0) for n, w in total["weight_sum"].items()
        },
        "entries_per_position": _mean_entries(out, final),
    }
    if weighting(method) != "min_ce":
        report["keep"] = keep
        report["dropped_mass"] = {
            "mean_per_position": total["dropped"] / max(final.positions, 1),
            "max": total["dropped_max"],
        }
    return report


def _mean_entries(directory: Path, manifest: StoreManifest) -> float:
    """Mean number of stored entries per fused position (from the shards' counts)."""
    total = 0
    for info in manifest.shards:
        total += int(load_file(str(directory / info.file))["topk_counts"].astype(np.int64).sum())
    return total / max(manifest.positions, 1)


__all__ = ["run_align", "fused_dir", "FusionError"]
