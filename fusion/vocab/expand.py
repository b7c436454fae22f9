"""``vocab expand``: add Korean tokens to a model, initialise them, report the compression gain."""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fusion.vocab.candidates import select_tokens
from fusion.vocab.corpus import VocabError, hangul_count, read_corpus, tokens_per_1k_korean
from fusion.vocab.rows import REPORT
from runrecords import lock
from runrecords.atomic import atomic_directory, check_output_path


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class ExpandOptions:
    """Knobs of the expansion (the CLI's defaults and help live here)."""

    add: int = field(default=1000, metadata=_help("Add at most this many tokens."))
    min_frequency: int = field(
        default=20, metadata=_help("Uses in the corpus a token needs to be kept.")
    )
    train_vocab_size: int = field(
        default=0,
        metadata=_help("Size of the tokenizer trained on the corpus (0: 2 x add + 1000)."),
    )
    text_field: str = field(default="text", metadata=_help("JSONL field holding the text."))
    max_lines: int | None = field(
        default=None, metadata=_help("Read at most this many texts from the corpus.")
    )
    trust_remote_code: bool = field(default=False, metadata=_help("Run model code from the Hub."))


def _load_tokenizer(model: str, trust_remote_code: bool) -> object:
    from transformers import AutoTokenizer

    path = Path(model)
    if not path.is_dir() and (model.startswith((".", "/")) or model.count("/") != 1):
        raise VocabError(f"model {model}: no such model directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise VocabError(f"model {model}: no loadable tokenizer ({exc})") from None
    if not tokenizer.is_fast:
        raise VocabError(
            f"model {model}: {type(tokenizer).__name__} is not a fast (tokenizers-backed) "
            "tokenizer; expansion needs one (convert it with tokenizers first)"
        )
    return tokenizer


def _quiet(text: str) -> None:
    return None


def expand(
    model: str,
    corpus: Path,
    output: Path,
    options: ExpandOptions,
    overwrite: bool = False,
    say: Callable[[str], None] = _quiet,
) -> dict:
    """Expand ``model`` with tokens from ``corpus`` into ``output``; returns the report.
    Warnings (an untied embedding) go to ``say``."""
    from transformers import AutoModelForCausalLM  # torch: load late

    from fusion.vocab.embeddings import resize_and_init, untie

    check_output_path(output, directory=True)  # a file there: one line, before any load
    if output.exists() and lock.entries(output) and not overwrite:
        raise VocabError(f"{output}: exists and is not empty (use --overwrite)")
    texts = read_corpus(corpus, options.text_field, options.max_lines)
    if hangul_count(texts) == 0:
        raise VocabError(f"{corpus}: no Korean (Hangul) text")
    tokenizer = _load_tokenizer(model, options.trust_remote_code)
    old_tokenizer = copy.deepcopy(tokenizer)
    before = tokens_per_1k_korean(tokenizer, texts)
    train_size = options.train_vocab_size or 2 * options.add + 1000
    selection = select_tokens(tokenizer, texts, options.add, options.min_frequency, train_size)
    tokenizer.add_tokens(selection.tokens)
    new_ids = tokenizer.convert_tokens_to_ids(selection.tokens)
    check_round_trip(old_tokenizer, tokenizer, texts)  # before the model is even loaded
    lm = AutoModelForCausalLM.from_pretrained(model, trust_remote_code=options.trust_remote_code)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        untied = untie(lm)
    for warning in caught:
        say(f"warning: {warning.message}")
    pieces = [selection.pieces[token] for token in selection.tokens]
    rows = resize_and_init(lm, new_ids, pieces)
    after = tokens_per_1k_korean(tokenizer, texts)
    report = {
        "model": model,
        "corpus": str(corpus),
        "texts": len(texts),
        "korean_characters": hangul_count(texts),
        "tokens_per_1k_korean_before": round(before, 2),
        "tokens_per_1k_korean_after": round(after, 2),
        "min_frequency": options.min_frequency,
        "rounds": selection.rounds,
        "untied_embeddings": untied,
        "old_tokens": len(old_tokenizer),
        "rows": rows,
        "added": [
            {"token": token, "id": token_id, "uses": selection.counts[token], "pieces": ids}
            for token, token_id, ids in zip(selection.tokens, new_ids, pieces, strict=True)
        ],
    }
    _save(lm, tokenizer, report, output)
    return report


def _round_trips(tokenizer: object, texts: list[str]) -> list[bool]:
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    decoded = tokenizer.batch_decode(encoded)  # type: ignore[attr-defined]
    return [text == back for text, back in zip(texts, decoded, strict=True)]


def check_round_trip(old_tokenizer: object, tokenizer: object, texts: list[str]) -> None:
    """Refuse an expansion after which a text the old tokenizer gave back comes back changed.

    Added tokens are matched before pre-tokenization, and the text around them is
    pre-tokenized on its own: a metaspace tokenizer that prepends ``▁`` to every such piece
    (``prepend_scheme: always``, SentencePiece's "legacy" mode) would insert a space after
    each added token. With ``first`` (transformers' Llama default) or ``never``, and with
    byte-level tokenizers, the text comes back unchanged.
    """
    old_ok, new_ok = _round_trips(old_tokenizer, texts), _round_trips(tokenizer, texts)
    broken = [
        number
        for number, (old, new) in enumerate(zip(old_ok, new_ok, strict=True), 1)
        if old and not new
    ]
    if not broken:
        return
    pipeline = tokenizer.backend_tokenizer.to_str()  # type: ignore[attr-defined]
    cause = (
        "its Metaspace pre-tokenizer has prepend_scheme 'always' (SentencePiece's legacy "
        "mode), which puts a ▁ after every added token; 'first' does not"
        if re.search(r'"prepend_scheme":\s*"always"', pipeline)
        else "added tokens cannot be used with this tokenizer"
    )
    raise VocabError(
        f"the expanded tokenizer changes {len(broken)} of {len(texts)} corpus texts on an "
        f"encode-decode round trip (first: text {broken[0]}): {cause}"
    )


def _save(model: object, tokenizer: object, report: dict, output: Path) -> None:
    """Write into a scratch folder and rename: no half-expanded model under ``output``."""
    with atomic_directory(output) as scratch:
        model.save_pretrained(scratch)  # type: ignore[attr-defined]
        tokenizer.save_pretrained(scratch)  # type: ignore[attr-defined]
        text = json.dumps(report, ensure_ascii=False, indent=1)
        (scratch / REPORT).write_text(text + "\n", encoding="utf-8")
