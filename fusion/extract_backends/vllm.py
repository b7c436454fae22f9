"""vLLM backend: prompt log-probabilities (GPU only, optional; UNTESTED on the development
machine, which has no GPU: the code follows vLLM's documented ``SamplingParams`` API).

``prompt_logprobs=k`` gives, for every prompt token t >= 1, the top-k of the distribution that
predicted it plus the prompt token itself; position t of the store (which predicts t+1) is
vLLM's entry t+1, and the last position's distribution is the one that generates the first
new token (``logprobs=k`` with ``max_tokens=1``). vLLM's log-probabilities are those of the
raw model distribution (its default ``logprobs_mode``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.errors import FusionError
from fusion.extract_backends import Scored


class VLLMBackend:
    def __init__(self, entry: Any, section: Any) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise FusionError("extract.backend vllm needs the vllm extra and a CUDA GPU") from None
        self.llm = LLM(
            model=entry.path,
            revision=entry.revision,
            trust_remote_code=entry.trust_remote_code,
            dtype="auto" if section.dtype == "auto" else section.dtype,
            max_model_len=section.max_length + 1,
        )
        self.k = section.k
        self.params = SamplingParams(
            max_tokens=1, temperature=0.0, prompt_logprobs=section.k, logprobs=section.k
        )
        self.vocab_size = int(self.llm.llm_engine.model_config.get_vocab_size())

    def _top(self, entries: dict[int, Any]) -> tuple[np.ndarray, np.ndarray]:
        ranked = sorted(entries.items(), key=lambda item: -item[1].logprob)[: self.k]
        ids = np.full(self.k, -1, dtype=np.int32)
        lps = np.full(self.k, -np.inf, dtype=np.float32)
        for slot, (tid, lp) in enumerate(ranked):
            ids[slot], lps[slot] = tid, lp.logprob
        return ids, lps

    def score(self, batch: list[list[int]]) -> list[Scored]:
        from vllm.inputs import TokensPrompt

        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in batch], self.params, use_tqdm=False
        )
        out: list[Scored] = []
        for ids, result in zip(batch, outputs, strict=True):
            n = len(ids)
            prompt = result.prompt_logprobs  # [None, {id: Logprob}, ...] one per prompt token
            top_ids = np.full((n, self.k), -1, dtype=np.int32)
            top_lp = np.full((n, self.k), -np.inf, dtype=np.float32)
            nll = np.zeros(n, dtype=np.float32)
            for t in range(n - 1):
                entries = prompt[t + 1]
                top_ids[t], top_lp[t] = self._top(entries)
                nll[t] = -entries[ids[t + 1]].logprob
            top_ids[n - 1], top_lp[n - 1] = self._top(result.outputs[0].logprobs[0])
            out.append((top_ids, top_lp, nll))
        return out
