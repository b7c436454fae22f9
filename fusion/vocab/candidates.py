"""Which Korean tokens to add: trained on the corpus, missing from the model, frequent, stable.

1. Train a BPE tokenizer (``tokenizers``, metaspace pre-tokenizer) on the corpus; its pieces
   become surface strings (``▁`` -> a leading space), and every Hangul syllable of the corpus
   is a candidate too (EEVE adds frequent single syllables a byte-level vocabulary lacks).
2. Keep candidates the model's tokenizer does not already encode as one token, used at least
   ``min_frequency`` times in the corpus by the trained tokenizer (syllables: occurrences),
   ranked by the tokens they would save (uses x (old pieces - 1)).
3. Iterate: add the candidates to the model's tokenizer, re-tokenize the corpus, and keep
   those the expanded tokenizer still uses ``min_frequency`` times (a longer token can make a
   shorter one useless). The ``limit`` best candidates enter the first round; stop
   when no token drops out (so at most ``limit`` are added).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fusion.vocab.corpus import is_hangul_syllable


@dataclass(frozen=True)
class Selection:
    """The chosen tokens (most used first) with their use counts, and the rounds it took."""

    tokens: list[str]
    counts: dict[str, int]
    rounds: int


def train_pieces(texts: list[str], vocab_size: int) -> Counter[str]:
    """Surface strings of a BPE trained on ``texts``, with how often it uses each."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>"], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    counts: Counter[str] = Counter()
    for encoding in tokenizer.encode_batch(texts):
        counts.update(encoding.tokens)
    counts.pop("<unk>", None)
    return Counter({piece.replace("▁", " "): n for piece, n in counts.items() if piece.strip("▁")})


def syllable_counts(texts: list[str]) -> Counter[str]:
    return Counter(char for text in texts for char in text if is_hangul_syllable(char))


def _pieces(tokenizer: Any, surface: str) -> int:
    """How many tokens the model's tokenizer needs for ``surface`` (1: already in the vocabulary)."""
    return len(tokenizer(surface, add_special_tokens=False)["input_ids"])


def _usage(tokenizer: Any, tokens: list[str], texts: list[str]) -> Counter[str]:
    """How often an expanded copy of ``tokenizer`` uses each of ``tokens`` on ``texts``."""
    expanded = copy.deepcopy(tokenizer)
    expanded.add_tokens(tokens)
    first_new = len(tokenizer)
    used: Counter[str] = Counter()
    for ids in expanded(texts, add_special_tokens=False)["input_ids"]:
        used.update(i for i in ids if i >= first_new)
    return Counter({expanded.convert_ids_to_tokens(i): n for i, n in used.items()})


def select_tokens(
    tokenizer: Any,
    texts: list[str],
    limit: int,
    min_frequency: int,
    train_vocab_size: int,
    max_rounds: int = 10,
) -> Selection:
    """Steps 1-3 of the module docstring."""
    counts = train_pieces(texts, train_vocab_size)
    for syllable, n in syllable_counts(texts).items():
        counts[syllable] = max(counts[syllable], n)
    pieces = {s: _pieces(tokenizer, s) for s, n in counts.items() if n >= min_frequency}
    # rank by tokens saved: uses x (old pieces - 1); one-piece strings are not missing
    chosen = sorted((s for s in pieces if pieces[s] > 1),
                    key=lambda s: (-counts[s] * (pieces[s] - 1), s))[:limit]  # fmt: skip
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        used = _usage(tokenizer, chosen, texts)
        kept = [s for s in chosen if used[s] >= min_frequency]
        kept.sort(key=lambda s: (-used[s] * (pieces[s] - 1), s))
        stable = len(kept) == len(chosen)
        chosen = kept
        if stable:
            break
    return Selection(tokens=chosen, counts={s: used[s] for s in chosen}, rounds=rounds)
