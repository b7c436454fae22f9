"""transformers backend: batched forward, top-k and gold NLL on the device.

Only [B, L, k] ids and scores (and [B, L] NLL) go to the host, never the [B, L, V] logits:
the log-probabilities of the top-k are ``topk(logits) - logsumexp(logits)``, so not even a
second V-sized tensor is made on the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.extract_backends import Scored, resolved_dtype

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class HFBackend:
    def __init__(self, entry: Any, section: Any, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.device = torch.device(device)
        dtype = resolved_dtype(section.dtype, self.device.type)
        self.model = AutoModelForCausalLM.from_pretrained(
            entry.path,
            revision=entry.revision,
            trust_remote_code=entry.trust_remote_code,
            dtype=getattr(torch, dtype),
        ).to(self.device)
        self.model.eval()
        self.k = section.k
        self.batch_rows = section.batch_size
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])

    def start_logprobs(self, start_id: int) -> np.ndarray:
        """log-softmax float32 [V] of the logits after the single token ``start_id``: the
        distribution of a text's first token given only the start token (fusion/framing.py)."""
        torch = self.torch
        ids = torch.tensor([[start_id]], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            logprobs = torch.log_softmax(logits[0, -1].float(), dim=-1)
        return logprobs.cpu().numpy().astype(np.float32)

    def score(self, batch: list[list[int]]) -> list[Scored]:
        torch = self.torch
        width = max(len(ids) for ids in batch)
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # right padding: positions stay 0..n-1
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        k = min(self.k, self.vocab_size)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask).logits.float()
            norm = torch.logsumexp(logits, dim=-1)
            top_values, top_ids = logits.topk(k, dim=-1)
            top_logprobs = top_values - norm[..., None]
            gold = logits[:, :-1].gather(-1, input_ids[:, 1:, None])[..., 0]
            nll = torch.zeros_like(norm)
            nll[:, :-1] = norm[:, :-1] - gold
            del logits
        top_ids_h = top_ids.to("cpu", torch.int32).numpy()
        top_lp_h = top_logprobs.cpu().numpy()
        nll_h = nll.cpu().numpy()
        out: list[Scored] = []
        for row, ids in enumerate(batch):
            n = len(ids)
            row_nll = nll_h[row, :n].copy()
            row_nll[n - 1] = 0.0
            ids_k, lp_k = top_ids_h[row, :n], top_lp_h[row, :n]
            if k < self.k:  # a vocabulary smaller than k: pad
                pad = self.k - k
                ids_k = np.pad(ids_k, ((0, 0), (0, pad)), constant_values=-1)
                lp_k = np.pad(lp_k, ((0, 0), (0, pad)), constant_values=-np.inf)
            out.append((ids_k, lp_k, row_nll))
        return out
