"""The strength check before training: how well each model predicts each corpus group.

Fusion can only transfer what a source predicts better than the target, so after extraction
(in the align path, before training) every model's top-k store is read back for one number per
corpus group (fusion/corpus.py: a JSONL row's optional ``group``): **bits per byte**, the
row texts' total gold NLL in nats over ``ln 2 * UTF-8 bytes``, summed over the group's rows
before dividing, so that models with different tokenizers are comparable. Its reference is
lm-eval's ``loglikelihood_rolling`` + ``bits_per_byte`` (the project's ``ko_bpb`` task): every
token of the text scored once, the first one conditioned on the model's BOS token (its EOS
where it has none). Each model's entry in the result says how its first token was scored
(``first_token``: ``bos``, ``start`` or ``unscored``), whether its number is compared
(``exact``) and, where it is not lm-eval's token for token, why (``note``).

What a store holds decides how that number is made (``Framing``, fusion/framing.py):

* a tokenizer that prepends its BOS (Llama, Mistral): the store's first token is the BOS and
  position t scores token t+1, so the text's every token is scored after the BOS: **exact**,
  token for token lm-eval's number;
* a tokenizer that prepends nothing (GPT-2, Qwen2): the store never scores the text's first
  token and conditions the rest without the start token. Extraction (hf backend) therefore
  writes the store's ``start.safetensors``: the model's log-probabilities of the first token
  after the start token alone. With it, a row's NLL is ``-log p(t0 | start)`` plus the
  store's ``-log p(t_i | t_0..t_{i-1})``, over the row's whole UTF-8 bytes: the model's
  **complete code length** of the text, a valid autoregressive factorisation, compared like
  the exact numbers (marked best, used for the warning) with a note saying so. It is not
  token for token lm-eval's (which keeps the start token in context for every token; the
  stores are not changed for this: they are the target's training inputs and what alignment
  reads). Without the file (a store extracted before fusebench wrote it, or by the vllm
  backend) or with one that does not match the store, the check reports the bits per byte of
  the scored part (bytes after the first token) and marks it **approximate** with the
  reason; approximate numbers are shown but never marked best nor used for the warning.

Tokens a tokenizer appends after the text (an EOS) are not scored. Truncation cannot happen:
extraction refuses a row longer than ``extract.max_length`` (fusion/extract.py), so every
stored row is its whole text. A row missing from any store (NaN/inf scores) is left out for
every model, as fusion leaves it out.

Rows won per group (the configured criterion, and each criterion) come from
``align/report.json`` (fusion/align/stage.py counts them while fusing). The result is written
to ``align/strength.json`` atomically and summarised in a few status lines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion.align.tokens import token_bytes, tokenizer_family
from fusion.config import FuseConfig
from fusion.corpus import Corpus
from fusion.corpus import load as load_corpus
from fusion.extract import load_tokenizer, models, store_dir
from fusion.framing import START_FILE, Framing, framing, read_start
from fusion.fuse import uses_aligned_ce
from fusion.layout import WorkDir
from fusion.store import TopKStore, check_same_corpus
from runrecords.atomic import write_json_atomic

FORMAT = "fusebench-strength"
VERSION = 1
CRITERIA = ("min_ce", "min_ce_aligned")  # as fusion/align/stage.py counts them
DEFINITION = (
    "bits per UTF-8 byte: the row texts' gold NLL (nats, from the top-k store) summed over "
    "the group, divided by ln 2 * their UTF-8 bytes; every text token scored once. Where the "
    "tokenizer prepends the model's BOS (EOS where it has none), after it, as lm-eval's "
    "loglikelihood_rolling + bits_per_byte; where it prepends nothing, the first token after "
    "the start token alone (the store's start.safetensors) and the rest conditioned on the text "
    "without it: the model's complete code length of the text (said in the model's note)"
)
WARNING = "fusion can transfer only what a source predicts better than the target"


@dataclass(frozen=True)
class Scoring:
    """How one model's store is scored: its framing, the start sidecar's first-token
    log-probabilities (None: not used), whether the number is compared, and the note."""

    frame: Framing
    first: np.ndarray | None
    exact: bool
    note: str | None

    @property
    def first_token(self) -> str:
        """How a row's first token is scored: bos, start (the sidecar) or unscored."""
        if self.frame.bos:
            return "bos"
        return "start" if self.first is not None else "unscored"


def scoring(store: TopKStore, tokenizer: Any) -> Scoring:
    """Exact after a prepended BOS; complete with a matching start sidecar; else approximate
    with the reason (a missing or bad sidecar is a note, never an error)."""
    frame = framing(tokenizer)
    if frame.bos:
        return Scoring(frame, None, True, None)
    if frame.prefix:
        return Scoring(
            frame,
            None,
            False,
            f"approximate: the tokenizer prepends {frame.prefix} token(s) "
            f"{list(frame.prefix_ids)}, not the start token {frame.start}; bits per byte of "
            "the text after them",
        )
    why = "the tokenizer has no BOS nor EOS"
    if frame.start is not None:
        first, why = read_start(store.path, store.manifest, frame.start)
        if first is not None:
            return Scoring(
                frame,
                first,
                True,
                "complete code length, not token for token lm-eval's: the tokenizer "
                f"prepends no start token, so each row's first token is scored after the "
                f"start token {frame.start} alone ({START_FILE}) and the rest as the store "
                "scored them, conditioned on the text without the start token",
            )
        backend = store.manifest.settings.get("backend")
        if backend != "hf" and not (store.path / START_FILE).exists():
            why = f"the {backend} backend writes no {START_FILE}"
        elif not (store.path / START_FILE).exists():
            why = f"no {START_FILE} in the store (`fusebench fuse extract` writes it)"
    return Scoring(
        frame,
        None,
        False,
        "approximate: the tokenizer prepends no start token and "
        f"{why}, so the store never scores a row's first token and conditions the rest "
        "without a start token; bits per byte of the text after the first token",
    )


def row_score(
    token_ids: np.ndarray,
    nll: np.ndarray,
    text: str,
    frame: Framing,
    first_bytes: Callable[[int], int],
    first: np.ndarray | None = None,
) -> tuple[float, int, int]:
    """(NLL nats, UTF-8 bytes, tokens scored) of one stored row. Position t of a store scores
    token t+1, so the text tokens ``prefix .. n-suffix-1`` are scored at positions
    ``prefix-1 .. n-suffix-2``; without a prefix the first text token is not: with ``first``
    (the start sidecar's log-probabilities) it is scored as ``-first[id]``, otherwise its
    bytes (``first_bytes(id)``) are left out of the row's."""
    n = len(token_ids)
    last = n - frame.suffix - 1  # index of the last text token
    lo = max(frame.prefix - 1, 0)
    scored = np.asarray(nll[lo:last], dtype=np.float64)
    value, tokens = float(scored.sum()), int(scored.size)
    size = len(text.encode("utf-8"))
    if frame.prefix == 0 and n > frame.suffix:
        if first is not None:
            value -= float(first[int(token_ids[0])])
            tokens += 1
        else:
            size = max(size - first_bytes(int(token_ids[0])), 0)
    return value, size, tokens


def _first_bytes(tokenizer: Any, family: str, text: str, token: int) -> int:
    """UTF-8 bytes of the text that a row's first token covers (a metaspace word marker that
    the tokenizer added before the text is no byte of it)."""
    data = token_bytes(tokenizer.convert_ids_to_tokens(token), family)
    if family == "metaspace" and data.startswith(b" ") and not text.startswith(" "):
        data = data[1:]
    return len(data)


def _cell(nll: float, size: int, tokens: int, rows: int) -> dict[str, Any]:
    return {
        "rows": rows,
        "bytes": size,
        "tokens": tokens,
        "nll_nats": nll,
        "bpb": nll / (math.log(2) * size) if size else None,
    }


def _model_scores(
    store: TopKStore, tokenizer: Any, corpus: Corpus, keep: set[int]
) -> tuple[Scoring, dict[str, dict[str, Any]], dict[str, Any]]:
    """Per group and in total: rows, bytes, tokens scored, NLL and bits per byte."""
    how = scoring(store, tokenizer)
    frame = how.frame
    family = tokenizer_family(tokenizer)
    sums: dict[str, list[float]] = {}
    for row, ids, nll in store.gold():
        if row not in keep:
            continue
        text = corpus.rows[row]
        value, size, tokens = row_score(
            ids,
            nll,
            text,
            frame,
            lambda t, text=text: _first_bytes(tokenizer, family, text, t),
            how.first,
        )
        acc = sums.setdefault(corpus.group(row), [0.0, 0, 0, 0])
        acc[0] += value
        acc[1] += size
        acc[2] += tokens
        acc[3] += 1
    groups = {g: _cell(a[0], int(a[1]), int(a[2]), int(a[3])) for g, a in sorted(sums.items())}
    total = _cell(
        sum(a[0] for a in sums.values()),
        int(sum(a[1] for a in sums.values())),
        int(sum(a[2] for a in sums.values())),
        int(sum(a[3] for a in sums.values())),
    )
    return how, groups, total


def _wins(
    report_file: Path, groups: list[str], names: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    """Rows won per criterion and group from align/report.json, or None and why not."""
    if not report_file.is_file():
        return None, f"{report_file} is missing (run `fusebench fuse align`)"
    report = json.loads(report_file.read_text(encoding="utf-8"))
    by_group, overall = report.get("rows_won_by_group"), report.get("rows_won") or {}
    stale = (
        f"{report_file} has no per-group win counts matching its totals (made by an older "
        "fusebench: rerun `fusebench fuse align --overwrite`)"
    )
    if not isinstance(by_group, dict):
        return None, stale
    for criterion in CRITERIA:
        split = by_group.get(criterion) or {}
        if set(overall.get(criterion) or {}) != set(names):
            return None, f"{report_file} counts other models than this config's"
        for name, count in (overall.get(criterion) or {}).items():
            if sum(int(split.get(g, {}).get(name, 0)) for g in split) != count:
                return None, stale
    return {c: {g: dict(by_group[c].get(g, {})) for g in groups} for c in CRITERIA}, None


def _best(models_out: dict[str, Any], group: str | None) -> str | None:
    """The exact model with the lowest bits per byte on ``group`` (None: the total)."""
    found = [
        (cell["bpb"], name)
        for name, entry in models_out.items()
        if entry["exact"]
        for cell in [entry["total"] if group is None else entry["groups"].get(group)]
        if cell is not None and cell["bpb"] is not None
    ]
    return min(found)[1] if found else None


def _margin(out: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The best (lowest) source-minus-target bpb over groups among exact numbers, and the
    warning when no source beats the target anywhere (None when it cannot be judged)."""
    target = out["models"][out["target"]]
    if not target["exact"]:
        return None, None
    best: dict[str, Any] | None = None
    for name, entry in out["models"].items():
        if name == out["target"] or not entry["exact"]:
            continue
        for group in out["groups"]:
            mine, theirs = entry["groups"].get(group), target["groups"].get(group)
            if not mine or not theirs or mine["bpb"] is None or theirs["bpb"] is None:
                continue
            diff = mine["bpb"] - theirs["bpb"]
            if best is None or diff < best["bpb_diff"]:
                best = {"source": name, "group": group, "bpb_diff": diff}
    if best is None or best["bpb_diff"] < 0:  # nothing comparable, or a source is better
        return best, None
    unjudged = [n for n, e in out["models"].items() if not e["exact"]]
    found = (
        f"best margin: {best['source']} on {best['group']}, {best['bpb_diff']:+.4f} bits per byte"
    )
    if unjudged:
        found += f"; {', '.join(unjudged)} approximate, not compared"
    return best, (
        f"warning: no source has lower bits per byte than the target {out['target']} on any "
        f"corpus group; {WARNING} ({found})"
    )


def compute(config: FuseConfig) -> dict[str, Any]:
    """The strength check of a work_dir whose stores (and align report) are finished."""
    corpus = load_corpus(config.work_dir)
    entries = models(config)
    stores = {e.name: TopKStore(store_dir(config, e)) for e in entries}
    check_same_corpus(list(stores.values()))
    present = [set(int(r) for r in s.row_ids()) for s in stores.values()]
    keep = set.intersection(*present)
    groups = sorted({corpus.group(r) for r in keep})
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "definition": DEFINITION,
        "target": entries[0].name,
        "groups": groups,
        "rows": len(keep),
        "rows_excluded": len(corpus) - len(keep),
        "models": {},
    }
    for entry in entries:
        how, by_group, total = _model_scores(
            stores[entry.name], load_tokenizer(entry), corpus, keep
        )
        out["models"][entry.name] = {
            "role": "target" if entry is entries[0] else "source",
            "exact": how.exact,
            "first_token": how.first_token,
            "note": how.note,
            "groups": by_group,
            "total": total,
        }
    out["best"] = {g: _best(out["models"], g) for g in groups}
    out["best_total"] = _best(out["models"], None)
    out["criterion"] = "min_ce_aligned" if uses_aligned_ce(config.fuse.method) else "min_ce"
    out["wins"], out["wins_note"] = _wins(
        WorkDir(config.work_dir).align_report, groups, [e.name for e in entries]
    )
    out["margin"], out["warning"] = _margin(out)
    return out


def _fmt(cell: dict[str, Any] | None, best: bool, exact: bool) -> str:
    if cell is None or cell["bpb"] is None:
        return "-"
    return f"{'' if exact else '~'}{cell['bpb']:.4f}{'*' if best else ''}"


def summary_lines(out: dict[str, Any]) -> list[str]:
    """The compact table (model x group bits per byte) and the win counts, as status lines."""
    several = len(out["groups"]) > 1
    columns = [*out["groups"], *(["total"] if several else [])]
    table = [["model", *columns]]
    for name, entry in out["models"].items():
        cells = []
        for col in columns:
            total = several and col == "total"
            cell = entry["total"] if total else entry["groups"].get(col)
            best = (out["best_total"] if total else out["best"].get(col)) == name
            cells.append(_fmt(cell, best, entry["exact"]))
        label = f"{name} (target)" if entry["role"] == "target" else name
        table.append([label, *cells])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    approximate = any(not m["exact"] for m in out["models"].values())
    lines = [
        f"strength check: bits per byte of the corpus text, {out['rows']} rows (lower is "
        f"better; * best in its group{'; ~ approximate' if approximate else ''})"
    ]
    for r in table:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for name, entry in out["models"].items():
        if entry["note"]:
            lines.append(f"  {'' if entry['exact'] else '~ '}{name}: {entry['note']}")
    if out["rows_excluded"]:
        lines.append(
            f"  {out['rows_excluded']} row(s) excluded from some store: left out for every model"
        )
    if out["wins"] is None:
        lines.append(f"  rows won per group: unavailable ({out['wins_note']})")
    else:
        won = out["wins"][out["criterion"]]
        for group in out["groups"]:
            total = sum(won[group].values())
            counts = ", ".join(f"{n} {c}/{total}" for n, c in won[group].items())
            lines.append(f"  rows won ({out['criterion']}) in {group}: {counts}")
    if out["warning"]:
        lines.append(out["warning"])
    return lines


def check_strength(config: FuseConfig, say: Callable[[str], None] = lambda text: None) -> Path:
    """Compute the strength check, write ``align/strength.json`` and report it to ``say``."""
    out = compute(config)
    path = WorkDir(config.work_dir).align_strength
    write_json_atomic(path, out)
    for line in summary_lines(out):
        say(line)
    return path
