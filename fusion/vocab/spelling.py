"""How the model's own tokenizer spells a new token *as the token is used in text*.

A candidate is a surface string: ``" 영화"`` (word-initial: it follows a space) or ``"헹"``
(word-internal, or at the very start of a text). Tokenized on its own, a word-internal string
is wrongly treated as a word start: a metaspace (SentencePiece-style) tokenizer prepends ``▁``
(``헹`` -> ``▁ <0xED> <0x97> <0xB9>``, ``는`` -> ``▁ 는`` although ``는`` is one token), and so
does a byte-level one with ``add_prefix_space``. The speller is a copy of the tokenizer with
that prefix switched off (Metaspace ``prepend_scheme: never``, ByteLevel ``add_prefix_space:
false``, no ``Prepend`` normalizer) and no post-processor, so the surface's own space is the
only word marker: ``" 영화"`` -> ``▁영화`` / ``Ġ영화``, ``"헹"`` -> ``<0xED> <0x97> <0xB9>``.

The token is added as that surface (``tokenizer.add_tokens``: plain ``AddedToken``, no
``lstrip``), checked by encode-decode round trips on every tokenizer family. Added tokens are
matched on the raw text before pre-tokenization, so ``" 영화"`` replaces exactly the span
``" 영화"`` that the old tokenizer read as ``▁영화``, and ``"헹"`` any ``헹`` inside a word:
the spelling is what the new row stands in for. The alternatives fail: ``"▁영화"`` never
matches (the raw text has no ``▁``; a Metaspace pre-tokenizer adds it after the match), and
``"영화"`` with ``lstrip=True`` swallows the space, which decoding does not give back. A
word-internal ``"헹"`` also matches after a space (as ``▁`` + ``헹``); where ``" 헹"`` is
added too, the longest match at the leftmost position wins and takes the space with it.
"""

from __future__ import annotations

import json
from typing import Any


def _no_prefix(node: Any) -> Any:
    """The JSON of a normalizer or pre-tokenizer with every word-marker prefix switched off."""
    if isinstance(node, list):
        return [_no_prefix(item) for item in node if not _is_prepend(item)]
    if not isinstance(node, dict):
        return node
    patched = {key: _no_prefix(value) for key, value in node.items()}
    if patched.get("type") == "Metaspace":
        patched["prepend_scheme"] = "never"
        if "add_prefix_space" in patched:  # tokenizers < 0.14 spelled it this way
            patched["add_prefix_space"] = False
    elif patched.get("type") == "ByteLevel" and "add_prefix_space" in patched:
        patched["add_prefix_space"] = False
    return patched


def _is_prepend(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "Prepend"


class Speller:
    """Old token ids spelling surface strings (see the module docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        from tokenizers import Tokenizer

        data = json.loads(tokenizer.backend_tokenizer.to_str())
        normalizer = data.get("normalizer")
        data["normalizer"] = None if _is_prepend(normalizer) else _no_prefix(normalizer)
        data["pre_tokenizer"] = _no_prefix(data.get("pre_tokenizer"))
        data["post_processor"] = None
        self._backend = Tokenizer.from_str(json.dumps(data))

    def ids(self, surface: str) -> list[int]:
        """The old ids that spell ``surface`` where it is used (one id: already a token)."""
        return self._backend.encode(surface, add_special_tokens=False).ids

    def many(self, surfaces: list[str]) -> list[list[int]]:
        encodings = self._backend.encode_batch(surfaces, add_special_tokens=False)
        return [encoding.ids for encoding in encodings]
