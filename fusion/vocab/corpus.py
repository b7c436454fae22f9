"""Korean text for tokenizer training and compression figures: JSONL or plain-text lines."""

from __future__ import annotations

import itertools
from pathlib import Path

from fusion.errors import FusionError
from runrecords.jsonl import json_lines


class VocabError(FusionError):
    """A vocabulary expansion cannot run: bad corpus, model or tokenizer."""


def read_corpus(path: Path, field: str = "text", max_lines: int | None = None) -> list[str]:
    """Non-empty texts: ``field`` of each JSON line (``.jsonl``), else each line (TSV: all columns)."""
    if not path.is_file():
        raise VocabError(f"{path}: no such corpus file")
    texts: list[str] = []
    with path.open(encoding="utf-8") as handle:
        # A line is read (and parsed) only while texts are still wanted.
        lines = itertools.takewhile(lambda _: max_lines is None or len(texts) < max_lines, handle)
        if path.suffix == ".jsonl":
            records = json_lines(lines, lambda number, why: VocabError(f"{path}:{number}: {why}"))
            for number, record in records:
                if not isinstance(record, dict) or not isinstance(record.get(field), str):
                    raise VocabError(f"{path}:{number}: no string field {field!r}")
                texts.append(record[field])
        else:
            for line in lines:
                if line.strip():
                    texts.append(line.rstrip("\n").replace("\t", " "))
    if not texts:
        raise VocabError(f"{path}: no text in the corpus")
    return texts


def is_hangul_syllable(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3"


def hangul_count(texts: list[str]) -> int:
    """Korean characters (precomposed Hangul syllables), the unit of the compression figure."""
    return sum(is_hangul_syllable(char) for text in texts for char in text)


def tokens_per_1k_korean(tokenizer: object, texts: list[str]) -> float:
    """Tokens the tokenizer needs per 1,000 Hangul syllables of ``texts`` (lower is better)."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    characters = hangul_count(texts)
    if characters == 0:
        raise VocabError("the corpus has no Korean (Hangul) characters")
    return 1000.0 * sum(len(ids) for ids in encoded) / characters
