"""Which Korean tokens to add: trained on the corpus, missing from the model, frequent, stable.

1. Train a BPE tokenizer (``tokenizers``, metaspace pre-tokenizer) on the corpus; its pieces
   become surface strings (``▁`` -> a leading space: ``" 영화"`` is word-initial, ``"는"``
   word-internal), and every Hangul syllable of the corpus is a candidate too, in the form it
   is used (``" 가"`` after a space, ``"가"`` elsewhere; EEVE adds frequent single syllables a
   byte-level vocabulary lacks).
2. Spell each candidate with the model's tokenizer as it is used in text (``spelling``) and
   keep those it needs more than one token for (a string already in the vocabulary is never a
   candidate: ``add_tokens`` would only re-register it as an added token), used at least
   ``min_frequency`` times in the corpus by the trained tokenizer (syllables: occurrences),
   ranked by the tokens they would save (uses x (old pieces - 1)).
3. Iterate: add the ``limit`` best candidates to a copy of the model's tokenizer, re-tokenize
   the corpus, drop those the expanded tokenizer uses fewer than ``min_frequency`` times (a
   longer token can make a shorter one useless) and fill their places with the next best
   candidates not tried yet; stop when a round drops nothing (so at most ``limit`` are added,
   and about ``limit`` when the corpus has that many frequent candidates).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fusion.vocab.corpus import is_hangul_syllable
from fusion.vocab.spelling import Speller


@dataclass(frozen=True)
class Selection:
    """The chosen tokens (most used first), their use counts and old spellings, the rounds."""

    tokens: list[str]
    counts: dict[str, int]
    pieces: dict[str, list[int]]
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
    """Hangul syllables by use: ``" 가"`` after a space (word-initial), ``"가"`` elsewhere."""
    counts: Counter[str] = Counter()
    for text in texts:
        for index, char in enumerate(text):
            if is_hangul_syllable(char):
                counts[" " + char if index and text[index - 1] == " " else char] += 1
    return counts


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
    vocabulary = tokenizer.get_vocab()
    frequent = sorted(s for s, n in counts.items() if n >= min_frequency and s not in vocabulary)
    speller = Speller(tokenizer)
    pieces = dict(zip(frequent, speller.many(frequent), strict=True))
    # rank by tokens saved: uses x (old pieces - 1); one-piece strings are not missing
    ranked = sorted(
        (s for s in frequent if len(pieces[s]) > 1),
        key=lambda s: (-counts[s] * (len(pieces[s]) - 1), s),
    )
    chosen, waiting = ranked[:limit], ranked[limit:]
    used: Counter[str] = Counter()
    rounds = 0
    while rounds < max_rounds and chosen:
        rounds += 1
        used = _usage(tokenizer, chosen, texts)
        kept = [s for s in chosen if used[s] >= min_frequency]
        if len(kept) == len(chosen):
            break
        refill = limit - len(kept)
        chosen, waiting = kept + waiting[:refill], waiting[refill:]
    chosen = [s for s in chosen if used[s] >= min_frequency]  # after the last round too
    chosen.sort(key=lambda s: (-used[s] * (len(pieces[s]) - 1), s))
    return Selection(
        tokens=chosen,
        counts={s: used[s] for s in chosen},
        pieces={s: pieces[s] for s in chosen},
        rounds=rounds,
    )
