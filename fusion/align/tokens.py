"""Token strings as text: the word markers and byte encodings of each tokenizer family undone.

Alignment compares tokens of two tokenizers by edit distance, so both must be spelled the same
way: GPT-2 style byte-level tokens (``Ġ`` for a space, Korean as mojibake such as ``ìĺģ``)
are decoded back to their bytes, SentencePiece-style tokens have ``▁`` turned into a space and
``<0xEA>`` byte-fallback tokens turned into their byte. Bytes that are not valid UTF-8 on their
own (a piece of a Korean syllable) become lone surrogates (``surrogateescape``), so the same
byte is the same character in every tokenizer and nothing is lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable-character table (the one every byte-level BPE uses)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def tokenizer_family(tokenizer: Any) -> str:
    """``byte-level``, ``metaspace`` or ``plain``, read from the fast tokenizer's pipeline."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    described = f"{getattr(backend, 'decoder', '')} {getattr(backend, 'pre_tokenizer', '')}"
    if "ByteLevel" in described:
        return "byte-level"
    if "Metaspace" in described:
        return "metaspace"
    return "plain"


def token_bytes(token: str, family: str) -> bytes:
    """The bytes a token stands for, markers as spaces (b' ')."""
    if family == "byte-level":
        table = _byte_decoder()
        if all(ch in table for ch in token):
            return bytes(table[ch] for ch in token)
        return token.encode("utf-8")  # an added token spelled in plain text
    if family == "metaspace":
        match = _BYTE_TOKEN.match(token)
        if match:
            return bytes([int(match.group(1), 16)])
        return token.replace("▁", " ").encode("utf-8")
    return token.encode("utf-8")


def bytes_text(data: bytes) -> str:
    """Bytes as text; undecodable bytes become lone surrogates (one per byte, reversible)."""
    return data.decode("utf-8", errors="surrogateescape")


@dataclass(frozen=True)
class Vocabulary:
    """One tokenizer's vocabulary in comparable forms, indexed by token id.

    ``raw``: the token strings; ``data``: their bytes (markers as spaces); ``text``: the bytes
    as text (used for vocabulary mapping: the space keeps word starts apart from word middles);
    ``key``: text without marker spaces (the DTW cost and the "tokens match" test, as the
    references strip markers). Special tokens keep their own spelling.
    """

    family: str
    raw: list[str]
    data: list[bytes]
    text: list[str]
    key: list[str]
    special_ids: frozenset[int]
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None

    def __len__(self) -> int:
        return len(self.raw)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> Vocabulary:
        family = tokenizer_family(tokenizer)
        size = len(tokenizer)
        raw = tokenizer.convert_ids_to_tokens(list(range(size)))
        special = frozenset(int(i) for i in tokenizer.all_special_ids)
        data = [
            r.encode("utf-8") if (i in special or r is None) else token_bytes(r, family)
            for i, r in enumerate(raw)
        ]
        return cls.from_bytes(
            family=family,
            raw=[r if r is not None else "" for r in raw],
            data=data,
            special_ids=special,
            bos_id=tokenizer.bos_token_id,
            eos_id=tokenizer.eos_token_id,
            unk_id=tokenizer.unk_token_id,
        )

    @classmethod
    def from_bytes(
        cls,
        *,
        family: str,
        raw: list[str],
        data: list[bytes],
        special_ids: frozenset[int],
        bos_id: int | None = None,
        eos_id: int | None = None,
        unk_id: int | None = None,
    ) -> Vocabulary:
        text = [bytes_text(d) for d in data]
        key = [t.replace(" ", "") for t in text]
        return cls(family, raw, data, text, key, special_ids, bos_id, eos_id, unk_id)

    @classmethod
    def from_tokens(
        cls, raw: list[str], family: str, special: dict[str, int] | None = None
    ) -> Vocabulary:
        """From token strings (id = position); ``special`` names bos/eos/unk ids if any."""
        special = special or {}
        ids = frozenset(special.values())
        data = [
            r.encode("utf-8") if i in ids else token_bytes(r, family) for i, r in enumerate(raw)
        ]
        return cls.from_bytes(
            family=family,
            raw=raw,
            data=data,
            special_ids=ids,
            bos_id=special.get("bos"),
            eos_id=special.get("eos"),
            unk_id=special.get("unk"),
        )

    def keys(self, ids: np.ndarray) -> list[str]:
        """Cost strings of a token sequence."""
        key = self.key
        return [key[i] for i in ids.tolist()]

    def end_offsets(self, ids: np.ndarray, text: str) -> np.ndarray:
        """Where each token of ``ids`` (a tokenisation of ``text``) ends, as a byte offset into
        the text's UTF-8 bytes with every space removed (markers and spaces differ between
        tokenizers; what is left is the same string for all of them).

        A special token counts its spelling when the text holds it there (a chat template's
        ``<|im_start|>``), else nothing (a BOS the tokenizer inserted). Why by hand: offset
        mappings are per character, so they cannot place byte-fallback and byte-level pieces
        of one Korean syllable.
        """
        stripped = text.encode("utf-8").replace(b" ", b"")
        ends = np.empty(len(ids), dtype=np.int64)
        cursor = 0
        for n, token in enumerate(ids.tolist()):
            if token in self.special_ids:
                spelling = self.data[token].replace(b" ", b"")
                if spelling and stripped.startswith(spelling, cursor):
                    cursor += len(spelling)
            else:
                cursor += len(self.data[token]) - self.data[token].count(b" ")
            ends[n] = cursor
        return ends
