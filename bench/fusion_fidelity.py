"""Fusion fidelity on a finished work_dir: the figures of issue 11, measured from the files.

Reads a work_dir after `fusebench fuse extract` and `fuse align` (the stores, the corpus, the
DTW paths and vocabulary maps under align/, and the fused store) and recomputes, in plain
Python and independently of the fusion stage's own bookkeeping:

1. vocabulary map: per source, the ordinary tokens whose identical text is in the target
   vocabulary but which the map sends elsewhere, and the share of the source's stored top-k
   entries that are such tokens;
2. AvgCE storage (fused stores made with avg_ce): the total-variation distance between the
   stored fused distribution (renormalised over its kept entries, as training reads it) and
   the specified mixture sum_m w_m P_m, w = softmax(exp(-CE)), computed with dicts;
3. offsets: one-to-one DTW pairs whose tokens match (same text, or mapped to each other) but
   end at different byte offsets of the row's text;
4. MinCE winners: rows won by each model under the native per-token CE (each model on its
   own tokens) and under the aligned CE (each candidate's distribution on the target's
   tokens, over the positions where every source has a projection of its own; a gold token
   missing from a candidate's entries gets the tail mass spread uniformly over the rest of
   V_T).

    PYTHONPATH=. python bench/fusion_fidelity.py runs/tiny-fuse [--avg runs/tiny-fuse-avg]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def align_inputs(work: Path, sources: list[str]) -> tuple[dict, dict]:
    """Each source's vocabulary map and DTW paths, as the align stage saved them."""
    from safetensors.numpy import load_file

    from fusion.align.stage import read_paths

    vmaps = {
        s: load_file(str(work / "align" / s / "vocab-map.safetensors"))["vmap"] for s in sources
    }
    return vmaps, {s: read_paths(work / "align" / s) for s in sources}


def ends(vocab, ids: np.ndarray, text: str) -> list[int]:
    """Byte offset where each token ends in the text with spaces removed (own derivation)."""
    stripped = text.encode("utf-8").replace(b" ", b"")
    out, cur = [], 0
    for t in ids.tolist():
        piece = vocab.data[t].replace(b" ", b"")
        if t in vocab.special_ids:
            if piece and stripped[cur : cur + len(piece)] == piece:
                cur += len(piece)
        else:
            cur += len(piece)
        out.append(cur)
    return out


def row_ce(seq) -> float:
    """Native row CE; a one-token tokenisation has no gold position and cannot win."""
    return seq.mean_nll if len(seq) > 1 else math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path, help="a min_ce (or any) work_dir")
    parser.add_argument("--avg", type=Path, help="a work_dir fused with avg_ce (for item 2)")
    parser.add_argument("--zoo", type=Path, default=None, help="where the models are")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from fusion.align.project import FROM_SOURCE, ONE_TO_MANY, log_normalise, project_row
    from fusion.align.tokens import Vocabulary
    from fusion.config import load_config  # noqa: F401
    from fusion.store import PAD_ID, TopKStore

    work = args.work_dir
    report = json.loads((work / "align" / "report.json").read_text())
    rows = [
        json.loads(line)["text"]
        for line in (work / "corpus" / "rows.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    key = json.loads(
        (work / "stores" / next(iter(report["projection"])) / "manifest.json").read_text()
    )
    del key
    # Model paths: from the zoo folder beside the work_dir's run (demo layout) or --zoo.
    zoo = args.zoo or work.resolve().parent.parent / "zoo"
    sources = list(report["projection"])
    target_name = next(p.name for p in (work / "stores").iterdir() if p.name not in sources)
    names = [target_name, *sources]
    stores = {n: TopKStore(work / "stores" / n) for n in names}
    vocabs = {n: Vocabulary.from_tokenizer(AutoTokenizer.from_pretrained(zoo / n)) for n in names}
    tv = vocabs[target_name]
    t_index = {t: i for i, t in enumerate(tv.text) if i not in tv.special_ids}
    takes_ends = "target_ends" in inspect.signature(project_row).parameters

    print(f"work_dir {work}: target {target_name}, sources {', '.join(sources)}")
    vmaps, paths = align_inputs(work, sources)
    for s in sources:
        sv = vocabs[s]
        wrong = [
            i
            for i in range(len(sv))
            if i not in sv.special_ids
            and sv.text[i] in t_index
            and vmaps[s][i] != t_index[sv.text[i]]
        ]
        wrong_set = set(wrong)
        entries = total = 0
        for seq in stores[s]:
            ids = seq.topk_ids[seq.topk_ids != PAD_ID]
            total += ids.size
            entries += int(np.isin(ids, list(wrong_set)).sum()) if wrong_set else 0
        examples = ", ".join(f"{sv.raw[i]!r}->{tv.raw[vmaps[s][i]]!r}" for i in wrong[:4])
        print(
            f"[1] {s}: {len(wrong)} of {len(sv)} tokens with an exact target mapped elsewhere "
            f"({examples}); {entries / max(total, 1):.2%} of its stored top-k entries"
        )

    # [3] offsets and [4] winners, over every row.
    mismatched = Counter()
    one_to_one = Counter()
    wins_native, wins_aligned, no_common = Counter(), Counter(), 0
    v_size = stores[target_name].manifest.vocab_size
    index = {n: {int(r): i for i, r in enumerate(stores[n].row_ids())} for n in names}
    for row, text in enumerate(rows):
        if any(row not in index[n] for n in names):
            continue
        own = stores[target_name].sequence(index[target_name][row])
        t_ends = ends(tv, own.token_ids, text)
        cands, native, usable = [], [row_ce(own)], np.ones(len(own) - 1, dtype=bool)
        # the target's own distribution: full-vocabulary log-probs of its top-k
        cands.append((own.topk_ids, own.topk_logprobs.astype(np.float64)))
        for s in sources:
            seq = stores[s].sequence(index[s][row])
            sv = vocabs[s]
            s_ends = ends(sv, seq.token_ids, text)
            matched: dict[int, list[int]] = {}
            for i, j in paths[s][row].tolist():
                matched.setdefault(i, []).append(j)
            for i, js in matched.items():
                if len(js) != 1:
                    continue
                a, b = int(own.token_ids[i]), int(seq.token_ids[js[0]])
                if tv.key[a] == sv.key[b] or int(vmaps[s][b]) == a:
                    one_to_one[s] += 1
                    mismatched[s] += t_ends[i] != s_ends[js[0]]
            extra = {"target_ends": np.asarray(t_ends), "source_ends": np.asarray(s_ends)}
            proj = project_row(
                tv,
                sv,
                vmaps[s],
                own.token_ids,
                seq.token_ids,
                seq.topk_ids,
                seq.topk_logprobs,
                paths[s][row],
                **(extra if takes_ends else {}),
            )
            usable &= np.isin(proj.outcome[:-1], [FROM_SOURCE, ONE_TO_MANY])
            # un-normalised mass of the mapped entries: renormalised log-probs x kept mass
            raw = seq.topk_logprobs.astype(np.float64)
            kept_mass = np.zeros(len(own))
            for i, js in matched.items():
                src = js[-1]
                ids_here = proj.ids[i][proj.ids[i] != PAD_ID]
                # mass of the source entries that mapped (first of each target id)
                seen, mass = set(), 0.0
                for sid, lp in zip(seq.topk_ids[src].tolist(), raw[src].tolist(), strict=True):
                    if sid == PAD_ID or vmaps[s][sid] < 0 or vmaps[s][sid] in seen:
                        continue
                    seen.add(int(vmaps[s][sid]))
                    mass += math.exp(lp)
                kept_mass[i] = mass if ids_here.size else 0.0
            lp = proj.logprobs.astype(np.float64) + np.log(np.maximum(kept_mass, 1e-300))[:, None]
            cands.append((proj.ids, lp))
            native.append(row_ce(seq))
        wins_native[names[int(np.argmin(native))]] += 1
        pos = np.flatnonzero(usable)
        if pos.size == 0:
            no_common += 1
            wins_aligned[names[int(np.argmin(native))]] += 1
            continue
        ces = []
        for ids, lp in cands:
            total = 0.0
            for i in pos.tolist():
                gold = int(own.token_ids[i + 1])
                real = ids[i] != PAD_ID
                p = np.exp(lp[i][real])
                hit = np.flatnonzero(ids[i][real] == gold)
                if hit.size:
                    total += -math.log(max(p[hit[0]], 1e-300))
                else:
                    tail = max(1.0 - p.sum(), 1e-6) / (v_size - real.sum())
                    total += -math.log(tail)
            ces.append(total / pos.size)
        wins_aligned[names[int(np.argmin(ces))]] += 1
    for s in sources:
        print(
            f"[3] {s}: {mismatched[s]} of {one_to_one[s]} matched one-to-one pairs end at "
            f"different offsets"
        )
    print(f"[4] rows won, native CE:  {dict(wins_native)}")
    print(
        f"[4] rows won, aligned CE: {dict(wins_aligned)} ({no_common} rows without a "
        "common projected position fall back to the native CE)"
    )
    del log_normalise

    if args.avg:
        tv_mean, tv_max, n = avg_tv(args.avg, names, vocabs, zoo, takes_ends)
        print(
            f"[2] avg_ce fused store vs the specified mixture: TV mean {tv_mean:.4f}, "
            f"max {tv_max:.4f} over {n} positions"
        )


def avg_tv(work: Path, names, vocabs, zoo, takes_ends) -> tuple[float, float, int]:

    from fusion.align.project import log_normalise, project_row
    from fusion.store import PAD_ID, TopKStore

    target, sources = names[0], names[1:]
    rows = [
        json.loads(line)["text"]
        for line in (work / "corpus" / "rows.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    stores = {n: TopKStore(work / "stores" / n) for n in names}
    fused = TopKStore(work / "fused")
    index = {n: {int(r): i for i, r in enumerate(stores[n].row_ids())} for n in names}
    f_index = {int(r): i for i, r in enumerate(fused.row_ids())}
    # A keep store sums source ids mapped to one target id (fusion/align/stage.py); follow it.
    sums = {"sum_repeats": True} if fused.manifest.settings.get("repeats") == "summed" else {}
    vmaps, paths = align_inputs(work, sources)
    tvs = []
    tv = vocabs[target]
    for row, text in enumerate(rows):
        if row not in f_index:
            continue
        own = stores[target].sequence(index[target][row])
        dists = [(own.topk_ids, log_normalise(own.topk_logprobs.astype(np.float32)))]
        ces = [row_ce(own)]
        for s in sources:
            seq = stores[s].sequence(index[s][row])
            extra = {}
            if takes_ends:
                extra = {
                    "target_ends": tv.end_offsets(own.token_ids, text),
                    "source_ends": vocabs[s].end_offsets(seq.token_ids, text),
                }
            proj = project_row(
                tv,
                vocabs[s],
                vmaps[s],
                own.token_ids,
                seq.token_ids,
                seq.topk_ids,
                seq.topk_logprobs,
                paths[s][row],
                **extra,
                **sums,
            )
            dists.append((proj.ids, proj.logprobs))
            ces.append(row_ce(seq))
        r = np.exp(-np.asarray(ces, dtype=np.float64))
        w = np.exp(r - r.max()) / np.exp(r - r.max()).sum()
        got = fused.sequence(f_index[row])
        for i in range(len(own)):
            mix: dict[int, float] = {}
            for m, (ids, lp) in enumerate(dists):
                if (ids[i] == PAD_ID).all():
                    ids, lp = dists[0]  # no projection there: the target's own stands in
                for t, v in zip(ids[i].tolist(), lp[i].tolist(), strict=True):
                    if t != PAD_ID:
                        mix[t] = mix.get(t, 0.0) + w[m] * math.exp(v)
            real = got.topk_ids[i] != PAD_ID
            lp = got.topk_logprobs[i][real].astype(np.float64)
            p = np.exp(lp - lp.max())
            p /= p.sum()
            stored = dict(zip(got.topk_ids[i][real].tolist(), p.tolist(), strict=True))
            keys = set(mix) | set(stored)
            tvs.append(0.5 * sum(abs(mix.get(t, 0.0) - stored.get(t, 0.0)) for t in keys))
    return float(np.mean(tvs)), float(np.max(tvs)), len(tvs)


if __name__ == "__main__":
    main()
