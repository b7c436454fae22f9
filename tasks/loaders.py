"""One loader per benchmark: the Hub schema, from the Hub or from the original files.

Every loader returns a ``datasets.DatasetDict`` whose splits and fields are those of the Hub
version (``skt/kobest_v1``, ``e9t/nsmc``, ``smilegate-ai/kor_unsmile``), so one task definition
serves both sources. The original files differ from the Hub: KoBEST headers change per task and
per split, booleans are spelled TRUE/True/False/FALSE, SentiNeg's test split carries the
pre-negation text too, and UnSmile is a multi-hot table. Those quirks are handled here and
nowhere else.

A benchmark may derive the splits it evaluates from the loaded ones (``ko_bpb``: held-out
text built from BoolQ's validation passages); the derivation runs on the Hub schema, so it
too is the same for both sources.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from tasks.datadir import data_dir, require_file
from tasks.encoding import read_utf8
from tasks.errors import TaskDataError

csv.field_size_limit(2**31 - 1)

# The ten UnSmile label columns, in the order of the Hub's ``labels`` vector.
UNSMILE_LABELS = (
    "여성/가족",
    "남성",
    "성소수자",
    "인종/국적",
    "연령",
    "지역",
    "종교",
    "기타 혐오",
    "악플/욕설",
    "clean",
)

Row = dict[str, str]
Converter = Callable[[Row, "RowContext"], dict]


@dataclass(frozen=True)
class RowContext:
    """Where a raw row came from, so a conversion error can name file and line."""

    path: Path
    line: int

    def fail(self, column: str, problem: str) -> TaskDataError:
        return TaskDataError(f"{self.path}:{self.line}: column {column!r}: {problem}")


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's two sources and how one raw row becomes one Hub-schema row."""

    name: str
    hub_path: str
    hub_name: str | None
    local_files: dict[str, str]  # split -> path relative to the data directory
    features: datasets.Features
    convert: Converter
    required_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Builds the evaluated splits from the loaded ones (None: the loaded splits are evaluated),
    # and says in a few words what they hold, for listings.
    derive: Callable[[datasets.DatasetDict], datasets.DatasetDict] | None = None
    derived_note: str | None = None

    @property
    def hub_id(self) -> str:
        return self.hub_path + (f" ({self.hub_name})" if self.hub_name else "")


_S = datasets.Value("string")
_I = datasets.Value("int64")

# ---------------------------------------------------------------- field parsers


def _text(row: Row, column: str, ctx: RowContext) -> str:
    value = row.get(column)
    if value is None:
        raise ctx.fail(column, "missing (the row has fewer fields than the header)")
    return value


def _bool(row: Row, column: str, ctx: RowContext) -> int:
    value = _text(row, column, ctx).strip().lower()
    if value not in ("true", "false"):
        raise ctx.fail(column, f"expected True or False, got {row[column]!r}")
    return int(value == "true")


def _int(row: Row, column: str, ctx: RowContext, allowed: range) -> int:
    raw = _text(row, column, ctx).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ctx.fail(column, f"expected an integer, got {raw!r}") from None
    if value not in allowed:
        raise ctx.fail(column, f"expected one of {list(allowed)}, got {value}")
    return value


# ---------------------------------------------------------------- row converters


def _boolq(row: Row, ctx: RowContext) -> dict:
    return {
        "paragraph": _text(row, "Text", ctx),
        "question": _text(row, "Question", ctx),
        "label": _bool(row, "Answer", ctx),
    }


def _copa(row: Row, ctx: RowContext) -> dict:
    return {
        "premise": _text(row, "sentence", ctx),
        "question": _text(row, "question", ctx),
        "alternative_1": _text(row, "1", ctx),
        "alternative_2": _text(row, "2", ctx),
        "label": _int(row, "Answer", ctx, range(1, 3)) - 1,
    }


def _hellaswag(row: Row, ctx: RowContext) -> dict:
    out = {"context": _text(row, "context", ctx)}
    for i in range(1, 5):
        out[f"ending_{i}"] = _text(row, f"choice{i}", ctx)
    out["label"] = _int(row, "label", ctx, range(4))
    return out


def _sentineg(row: Row, ctx: RowContext) -> dict:
    # The test split also has Text_origin/Label_origin (before negation); the Hub keeps the
    # negated pair, which is what the benchmark evaluates.
    return {"sentence": _text(row, "Text", ctx), "label": _int(row, "Label", ctx, range(2))}


def _wic(row: Row, ctx: RowContext) -> dict:
    return {
        "word": _text(row, "Target", ctx),
        "context_1": _text(row, "SENTENCE1", ctx),
        "context_2": _text(row, "SENTENCE2", ctx),
        "label": _bool(row, "ANSWER", ctx),
    }


def _nsmc(row: Row, ctx: RowContext) -> dict:
    return {
        "id": _text(row, "id", ctx),
        "document": _text(row, "document", ctx),
        "label": _int(row, "label", ctx, range(2)),
    }


def _unsmile(row: Row, ctx: RowContext) -> dict:
    return {
        "문장": _text(row, "문장", ctx),
        "labels": [_int(row, name, ctx, range(2)) for name in UNSMILE_LABELS],
    }


# ---------------------------------------------------------------- derived splits


def heldout_passages(splits: datasets.DatasetDict) -> datasets.DatasetDict:
    """ko_bpb's text: BoolQ's validation passages, each once (first occurrence, file order),
    less every passage the train split also holds (exact string match: 2 of the 700 in KoBEST
    v1) or shares text with (a 25-character or 13-word n-gram, the contamination check's
    rule: 14 more, the same Wikipedia articles cut differently). Models trained on KoBEST
    train splits have therefore never seen any of it. ``index`` is the passage's first row in
    the validation split, to trace it back."""
    train = list(splits["train"]["paragraph"])
    in_train = set(train)
    first_rows: dict[str, int] = {}
    for row, passage in enumerate(splits["validation"]["paragraph"]):
        first_rows.setdefault(passage, row)
    kept = [
        {"text": passage, "index": row}
        for passage, row in first_rows.items()
        if passage not in in_train
    ]
    kept = _less_shared(kept, train)
    features = datasets.Features({"text": _S, "index": _I})
    return datasets.DatasetDict({"validation": datasets.Dataset.from_list(kept, features=features)})


def _less_shared(rows: list[dict], train: list[str]) -> list[dict]:
    """``rows`` less those whose text shares text with ``train`` (tasks/contamination)."""
    from tasks.contamination.check import shared_with

    shared = shared_with([row["text"] for row in rows], dict.fromkeys(t.strip() for t in train))
    return [row for i, row in enumerate(rows) if i not in shared]


def _held_out_texts(
    texts: list[str], seen: set[str], split: str, shared: bool = True
) -> datasets.DatasetDict:
    """Each text once (first occurrence, file order), stripped, less the empty ones, those in
    ``seen`` and (``shared``) those that share text with ``seen`` (``_less_shared``);
    ``index`` is the text's first row in its split, to trace it back."""
    first_rows: dict[str, int] = {}
    for row, raw in enumerate(texts):
        text = raw.strip()
        if text and text not in seen:
            first_rows.setdefault(text, row)
    kept = [{"text": text, "index": row} for text, row in first_rows.items()]
    if shared and seen:
        kept = _less_shared(kept, sorted(seen))
    features = datasets.Features({"text": _S, "index": _I})
    return datasets.DatasetDict({split: datasets.Dataset.from_list(kept, features=features)})


def heldout_comments(splits: datasets.DatasetDict) -> datasets.DatasetDict:
    """ko_bpb_comments' text: UnSmile's valid comments (online comments and replies), less
    every comment its train split also holds or shares text with, so no model trained on
    UnSmile train saw it."""
    seen = {text.strip() for text in splits["train"]["문장"]}
    return _held_out_texts(list(splits["valid"]["문장"]), seen, "validation")


def heldout_reviews(splits: datasets.DatasetDict) -> datasets.DatasetDict:
    """ko_bpb_reviews' text: NSMC's test reviews (movie reviews). The train split (Hub only)
    is read for nothing: no zoo model trains on any NSMC text."""
    return _held_out_texts(list(splits["test"]["document"]), set(), "test")


def heldout_products(splits: datasets.DatasetDict) -> datasets.DatasetDict:
    """ko_bpb_products' text: KoBEST SentiNeg's validation and test sentences (shopping
    reviews), less every sentence its train split also holds or shares text with."""
    seen = {text.strip() for text in splits["train"]["sentence"]}
    texts = list(splits["validation"]["sentence"]) + list(splits["test"]["sentence"])
    return _held_out_texts(texts, seen, "test")


# ---------------------------------------------------------------- the catalogue


def _kobest(task: str, convert: Converter, features: dict) -> Benchmark:
    return Benchmark(
        name=f"kobest_{task}",
        hub_path="skt/kobest_v1",
        hub_name=task,
        local_files={
            s: f"kobest_v1/{task}/{f}.tsv"
            for s, f in (("train", "train"), ("validation", "dev"), ("test", "test"))
        },
        features=datasets.Features(features),
        convert=convert,
    )


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        _kobest("boolq", _boolq, {"paragraph": _S, "question": _S, "label": _I}),
        _kobest(
            "copa",
            _copa,
            {"premise": _S, "question": _S, "alternative_1": _S, "alternative_2": _S, "label": _I},
        ),
        _kobest(
            "hellaswag",
            _hellaswag,
            {"context": _S, **{f"ending_{i}": _S for i in range(1, 5)}, "label": _I},
        ),
        _kobest("sentineg", _sentineg, {"sentence": _S, "label": _I}),
        _kobest("wic", _wic, {"word": _S, "context_1": _S, "context_2": _S, "label": _I}),
        Benchmark(
            name="nsmc",
            hub_path="e9t/nsmc",
            hub_name=None,
            # Only the test split is in the shared data; the Hub also has train.
            local_files={"test": "nsmc/ratings_test.txt"},
            features=datasets.Features({"id": _S, "document": _S, "label": _I}),
            convert=_nsmc,
        ),
        Benchmark(
            name="korunsmile",
            hub_path="smilegate-ai/kor_unsmile",
            hub_name=None,
            local_files={
                "train": "korean_unsmile/unsmile_train_v1.0.tsv",
                "valid": "korean_unsmile/unsmile_valid_v1.0.tsv",
            },
            features=datasets.Features({"문장": _S, "labels": datasets.Sequence(_I)}),
            convert=_unsmile,
        ),
        Benchmark(
            # Held-out Korean text for a tokenizer-independent language-modelling score. Only
            # BoolQ's validation split is evaluated; its train split is read only to leave out
            # the passages it shares (see heldout_passages). The test split is never read.
            name="ko_bpb",
            hub_path="skt/kobest_v1",
            hub_name="boolq",
            local_files={
                "validation": "kobest_v1/boolq/dev.tsv",
                "train": "kobest_v1/boolq/train.tsv",
            },
            features=datasets.Features({"paragraph": _S, "question": _S, "label": _I}),
            convert=_boolq,
            derive=heldout_passages,
            derived_note="BoolQ passages, de-duplicated, less those in or sharing text with train",
        ),
    )
}


# Domain held-out text for bits per byte (tasks ko_bpb_comments, ko_bpb_products,
# ko_bpb_reviews): a benchmark's own files, with the text of its evaluation split(s) derived.
BENCHMARKS.update(
    {
        b.name: b
        for b in (
            dataclasses.replace(
                BENCHMARKS["korunsmile"],
                name="ko_bpb_comments",
                derive=heldout_comments,
                derived_note="UnSmile valid comments, de-duplicated, less those in or sharing text with train",
            ),
            dataclasses.replace(
                BENCHMARKS["kobest_sentineg"],
                name="ko_bpb_products",
                derive=heldout_products,
                derived_note="SentiNeg dev and test sentences, de-duplicated, less those in or sharing text with train",
            ),
            dataclasses.replace(
                BENCHMARKS["nsmc"],
                name="ko_bpb_reviews",
                derive=heldout_reviews,
                derived_note="NSMC test reviews (movie reviews), de-duplicated, non-empty",
            ),
        )
    }
)


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        known = ", ".join(sorted(BENCHMARKS))
        raise TaskDataError(f"unknown benchmark {name!r}; known: {known}") from None


# ---------------------------------------------------------------- reading


def read_tsv(path: Path, convert: Converter) -> Iterator[dict]:
    """Rows of one original TSV file in the Hub schema.

    The files are tab-separated with no quoting (quotes are literal text), so csv runs with
    QUOTE_NONE; a row with more or fewer fields than the header is an error, not a guess.
    """
    # Decoded whole before parsing: a file that is not UTF-8 is refused before any row is used.
    reader = csv.reader(
        io.StringIO(read_utf8(path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE
    )
    try:
        header = next(reader)
    except StopIteration:
        raise TaskDataError(f"{path}: empty file (expected a header row)") from None
    for fields in reader:
        if not fields:  # a trailing newline at the end of the file
            continue
        ctx = RowContext(path, reader.line_num)
        if len(fields) != len(header):
            raise TaskDataError(
                f"{path}:{reader.line_num}: {len(fields)} tab-separated fields, "
                f"header has {len(header)}"
            )
        yield convert(dict(zip(header, fields, strict=True)), ctx)


def load_local(benchmark: Benchmark, root: Path) -> datasets.DatasetDict:
    splits = {}
    for split, relative in benchmark.local_files.items():
        rows = list(read_tsv(require_file(root, relative), benchmark.convert))
        splits[split] = datasets.Dataset.from_list(rows, features=benchmark.features)
    return datasets.DatasetDict(splits)


def load_hub(benchmark: Benchmark) -> datasets.DatasetDict:
    """The Hub version (users with network access); a clear error when it cannot be reached."""
    try:
        loaded = datasets.load_dataset(benchmark.hub_path, benchmark.hub_name)
    except Exception as err:  # offline, gated, renamed: all end the same way for the user
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TaskDataError(
            f"{benchmark.name}: no local data directory (set FUSEBENCH_DATA_DIR) and the Hub "
            f"dataset {benchmark.hub_id} could not be loaded: {reason}"
        ) from None
    return derived(benchmark, loaded)


def derived(benchmark: Benchmark, loaded: datasets.DatasetDict) -> datasets.DatasetDict:
    """The splits the benchmark evaluates: the loaded ones, or what ``derive`` builds."""
    return loaded if benchmark.derive is None else benchmark.derive(loaded)


@functools.lru_cache(maxsize=16)
def _load_local_cached(name: str, root: Path) -> datasets.DatasetDict:
    # One parse per process: an eval at several shot counts builds each task several times.
    # Datasets are immutable (lm-eval's process_docs maps into new ones), so sharing is safe.
    benchmark = get_benchmark(name)
    return derived(benchmark, load_local(benchmark, root))


def load_benchmark(name: str, root: Path | None = None) -> datasets.DatasetDict:
    """The benchmark's splits: from ``root`` or the data directory when there is one, else the Hub."""
    benchmark = get_benchmark(name)
    root = root if root is not None else data_dir()
    if root is None:
        return load_hub(benchmark)
    return _load_local_cached(name, root.resolve())


def describe_source(name: str) -> str:
    """Where ``load_benchmark(name)`` would read from, for listings and manifests."""
    benchmark = get_benchmark(name)
    root = data_dir()
    if root is None:
        return f"hub:{benchmark.hub_id}"
    return f"local:{root}"
