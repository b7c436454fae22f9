"""vLLM backend: prompt log-probabilities (GPU only, optional; UNTESTED on the development
machine, which has no GPU: the calls follow vLLM's documented ``LLM`` / ``SamplingParams``
API, and every argument and conversion is built and tested in ``vllm_plan``).

``prompt_logprobs=k`` gives, for every prompt token t >= 1, the top-k of the distribution that
predicted it plus the prompt token itself; position t of the store (which predicts t+1) is
vLLM's entry t+1, and the last position's distribution is the one that generates the first
new token (``logprobs=k`` with ``max_tokens=1``). vLLM's log-probabilities are those of the
raw model distribution (its default ``logprobs_mode``).

One process drives every GPU it uses (``extract.tensor_parallel_size``): the pipeline never
starts one rank per GPU for this backend (see ``fusion.pipeline.extract``). A whole shard
goes to ``LLM.generate`` at once (``batch_rows = None``), so vLLM's scheduler batches it.
"""

from __future__ import annotations

from typing import Any

from fusion.errors import FusionError
from fusion.extract_backends import Scored
from fusion.extract_backends.vllm_plan import llm_kwargs, plan, sampling_kwargs, scored


class VLLMBackend:
    batch_rows = None  # the whole shard per call: vLLM batches by itself

    def __init__(self, entry: Any, section: Any) -> None:
        chosen = plan(entry, section)  # refusals first: nothing is loaded for a bad config
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise FusionError("extract.backend vllm needs the vllm extra and a CUDA GPU") from None
        self.llm = LLM(**llm_kwargs(entry, section, chosen))
        self.k = section.k
        self.params = SamplingParams(**sampling_kwargs(section.k))
        self.vocab_size = chosen.vocab_rows

    def score(self, batch: list[list[int]]) -> list[Scored]:
        from vllm.inputs import TokensPrompt

        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in batch], self.params, use_tqdm=False
        )
        return scored(batch, outputs, self.k)
