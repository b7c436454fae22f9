"""Resize a causal LM for added tokens and initialise the new rows from their old spelling.

New input row = mean of the input rows of the old sub-tokens that spell the token; new output
row = the output row of its first old sub-token (EEVE). The spelling is the token's as it is used
in text (``spelling.Speller``): ``▁영화`` for a word-initial ``" 영화"``, the three byte tokens
alone for a word-internal ``"헹"`` (no bare ``▁`` in front). A model with tied embeddings is untied
first: the two rows get different initial values, and later stages train them separately.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch


def untie(model: Any) -> bool:
    """Give the LM head its own copy of the embedding matrix; True if it was tied."""
    output = model.get_output_embeddings()
    if output is None or output.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        model.config.tie_word_embeddings = False
        return False
    warnings.warn(
        "the model ties its input and output embeddings; untying them (the output matrix "
        "becomes a copy) so the new rows can be initialised and trained apart",
        stacklevel=2,
    )
    output.weight = torch.nn.Parameter(output.weight.detach().clone())
    model.config.tie_word_embeddings = False
    text_config = model.config.get_text_config()
    text_config.tie_word_embeddings = False
    return True


def resize_and_init(model: Any, new_ids: list[int], pieces: list[list[int]]) -> int:
    """Grow the embeddings to hold ``new_ids`` and set those rows from ``pieces``.

    The ids come from the expanded tokenizer; a model whose matrix already has spare rows
    (padded vocabularies) keeps its size. Returns the number of rows after resizing.
    """
    rows = max(model.get_input_embeddings().weight.shape[0], max(new_ids, default=-1) + 1)
    model.resize_token_embeddings(rows, mean_resizing=False)
    input_weight = model.get_input_embeddings().weight
    output_weight = model.get_output_embeddings().weight
    with torch.no_grad():
        for row, ids in zip(new_ids, pieces, strict=True):
            input_weight[row] = input_weight[ids].mean(dim=0)
            output_weight[row] = output_weight[ids[0]]
    return rows
