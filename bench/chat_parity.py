"""Chat-template parity: fusebench's ``hf`` (shared-context) scores against lm-eval's ``hf``.

For every zoo model, kobest_boolq and kobest_hellaswag (real Korean data) at 0 and 5 shots,
lm-eval builds the chat-formatted requests (template, a Korean system instruction, few-shot
examples as turns) and scores them with fusebench's model; lm-eval's own HFLM scores the same
requests independently. Prints the largest per-request log-likelihood difference.

    PYTHONPATH=. python bench/chat_parity.py --limit 4
"""

from __future__ import annotations

import argparse

from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from fusion.zoo import cached_zoo
from harness.backends.shared_context import SharedContextLM
from tasks import catalog

TASKS = ["kobest_boolq", "kobest_hellaswag"]
SYSTEM = "주어진 질문에 답하세요."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4)
    args = parser.parse_args()
    zoo = cached_zoo()
    for model in sorted(p.name for p in zoo.iterdir() if (p / "config.json").is_file()):
        kwargs = dict(pretrained=str(zoo / model), batch_size=8, device="cpu", dtype="float32")
        for shots in (0, 5):
            results = simple_evaluate(
                model=SharedContextLM(**kwargs),
                tasks=TASKS,
                num_fewshot=shots,
                limit=args.limit,
                task_manager=catalog.task_manager(),
                bootstrap_iters=0,
                apply_chat_template=True,
                system_instruction=SYSTEM,
                fewshot_as_multiturn=True,
            )
            samples = [s for task in TASKS for s in results["samples"][task]]
            pairs = [tuple(a) for s in samples for a in s["arguments"]]
            requests = [Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)]
            theirs = HFLM(**kwargs).loglikelihood(requests, disable_tqdm=True)
            ours = [r[0][0] for s in samples for r in s["resps"]]
            worst = max(abs(a - b[0]) for a, b in zip(ours, theirs, strict=True))
            print(f"{model} {shots}-shot: {len(pairs)} requests, max |dLL| {worst:.2e}", flush=True)


if __name__ == "__main__":
    main()
