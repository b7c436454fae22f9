"""The hand computation the bits-per-byte tests check lm-eval against: a text's
log-likelihood straight from transformers, never through lm-eval."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def hand_loglikelihoods(path: Path, texts: list[str], scored_bos: bool = False) -> list[float]:
    """Per text log P(text | document start) straight from transformers: the text's tokens
    without special tokens, the first conditioned on the tokenizer's BOS (its EOS when it
    has none). ``scored_bos``: a BOS token is scored as the text's first token, as lm-eval's
    own model does with tokenizers that prepend one."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    start = tokenizer.bos_token_id
    if start is None:
        start = tokenizer.eos_token_id
    out = []
    for text in texts:
        ids = [start] * scored_bos + tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) + 1 <= model.config.max_position_embeddings  # one window suffices
        with torch.no_grad():
            logits = model(torch.tensor([[start, *ids]])).logits[0, :-1].double()
        logp = torch.log_softmax(logits, dim=-1)
        out.append(float(logp[torch.arange(len(ids)), torch.tensor(ids)].sum()))
    return out
