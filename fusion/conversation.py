"""Conversation corpora (FuseChat): ``messages`` rows, rendered once, trained on responses only.

A conversation is a list of ``{"role": system|user|assistant, "content": str}``. It is rendered
ONCE, with the *target's* chat template, into the corpus row's text, so every model (target
and sources) is extracted on the identical text. With the text go the character spans
``[start, end)`` of the assistant responses: the assistant's content and the end-of-turn
marker the template writes right after it (``</s>``, ``<|im_end|>``; trailing whitespace is
not part of it), since the model is trained to end its turn.

Each span is found without guessing the template's syntax: the conversation up to an
assistant turn, rendered with ``add_generation_prompt=True``, must be a prefix of the whole
rendering, and so must the conversation up to and including that turn; the content must appear
verbatim between the two, and what follows it up to the turn's end is the marker.

A leading BOS that the template writes is dropped from the text when the target's tokenizer
adds BOS itself (every model adds its own special tokens when it tokenizes a row, as for plain
text rows), so the target does not see it twice.

The per-token rule (``token_mask``): position t, which predicts token t+1, is trained iff
token t+1 overlaps a response span (offsets from the fast tokenizer; byte-fallback pieces of
one character share its offsets, so they are in or out together; zero-width tokens such as an
added BOS are out). The last position predicts nothing and is out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ROLES = ("system", "user", "assistant")
Span = tuple[int, int]


def check_messages(value: Any) -> list[dict[str, str]]:
    """``value`` as a list of {role, content} messages; ValueError naming what is wrong."""
    if not isinstance(value, list) or not value:
        raise ValueError("`messages` must be a non-empty list of {role, content} objects")
    out = []
    for number, message in enumerate(value):
        if not isinstance(message, dict):
            raise ValueError(f"message {number}: expected an object with `role` and `content`")
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise ValueError(
                f"message {number}: unexpected key(s) {', '.join(extra)} (only "
                "role and content are rendered)"
            )
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"message {number}: role {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"message {number}: `content` must be a string")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError("no assistant message: a conversation without a response trains nothing")
    return out


@dataclass
class Renderer:
    """The target's chat template, applied to conversations."""

    tokenizer: Any
    drop_bos: str | None  # the BOS text dropped from the front of each rendering, if any

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, name: str) -> Renderer:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"the target's tokenizer ({name}) has no chat template to render conversations with"
            )
        bos = tokenizer.bos_token
        probe = "a"
        with_special = tokenizer(probe, add_special_tokens=True)["input_ids"]
        without = tokenizer(probe, add_special_tokens=False)["input_ids"]
        adds_bos = (
            bos is not None
            and with_special[:1] == [tokenizer.bos_token_id]
            and with_special[1:] == without
        )
        return cls(tokenizer, bos if adds_bos else None)

    def key(self) -> dict[str, Any]:
        """What the renderings depend on (goes into the corpus settings)."""
        template = self.tokenizer.chat_template
        text = template if isinstance(template, str) else repr(template)
        return {
            "chat_template_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "special_tokens": {"bos": self.tokenizer.bos_token, "eos": self.tokenizer.eos_token},
            "dropped_bos": self.drop_bos,
        }

    def _apply(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        except Exception as err:  # jinja2's TemplateError and what raise_exception raises
            raise ValueError(f"the chat template refused the conversation ({err})") from None

    def render(self, messages: list[dict[str, str]]) -> tuple[str, list[Span]]:
        """The rendered text and its response spans (checked messages, see check_messages)."""
        full = self._apply(messages, False)
        spans: list[Span] = []
        for number, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._apply(messages[:number], True) if number else ""
            turn = self._apply(messages[: number + 1], False)
            if not full.startswith(before) or not full.startswith(turn):
                raise ValueError(
                    f"message {number}: the chat template renders the conversation up to this "
                    "turn differently from the whole conversation (spans cannot be located)"
                )
            content = message["content"]
            start = full.find(content, len(before), len(turn))
            if start < 0 or (spans and start < spans[-1][1]):
                raise ValueError(
                    f"message {number}: the chat template does not render the "
                    "assistant content verbatim"
                )
            end = start + len(content)
            end += len(full[end : len(turn)].rstrip())  # the end-of-turn marker
            if end == start:
                raise ValueError(f"message {number}: empty assistant turn (nothing to train on)")
            spans.append((start, end))
        if self.drop_bos and full.startswith(self.drop_bos):
            cut = len(self.drop_bos)
            full = full[cut:]
            spans = [(a - cut, b - cut) for a, b in spans]
        return full, spans


def token_mask(offsets: Sequence[Sequence[int]], spans: Sequence[Sequence[int]]) -> np.ndarray:
    """uint8 [n]: 1 at position t iff token t+1 overlaps a span (t predicts token t+1)."""
    n = len(offsets)
    bounds = np.asarray(offsets, dtype=np.int64).reshape(n, 2)
    starts, ends = bounds[:, 0], bounds[:, 1]
    inside = np.zeros(n, dtype=bool)
    for a, b in spans:
        inside |= (starts < b) & (ends > a) & (ends > starts)
    mask = np.zeros(n, dtype=np.uint8)
    mask[:-1] = inside[1:]
    return mask


def token_masks(
    tokenizer: Any, texts: list[str], spans: list[list[Span]], name: str
) -> list[tuple[list[int], np.ndarray]]:
    """Each row's token ids (special tokens as the tokenizer adds them) and its response mask."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{name}: response masks need a fast tokenizer (character offsets)")
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True)
    return [
        (ids, token_mask(offsets, row_spans))
        for ids, offsets, row_spans in zip(
            encoded["input_ids"], encoded["offset_mapping"], spans, strict=True
        )
    ]
