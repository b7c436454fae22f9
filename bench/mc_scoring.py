"""Multiple-choice scoring speed: lm-eval's ``hf`` model against fusebench's shared-context one.

Both backends run in this process on the same model object, the same documents and the same
batch size; only the time spent inside the model's ``loglikelihood`` is counted (task and
dataset set-up are the same lm-eval code for both). Each task also reports the largest
loglikelihood difference and the number of differing is-greedy flags, so a speed-up can never
hide a change of numbers.

    PYTHONPATH=. python bench/mc_scoring.py --model tiny-llama --limit 200 --batch-size 8
    PYTHONPATH=. python bench/mc_scoring.py --hidden 512 --layers 8 --limit 100

``--model`` is a zoo name (built into .cache/ on first use) or a model directory; ``--hidden``
and ``--layers`` random-initialise a wider or deeper model of the same architecture with the
same tokenizer, so that the figures reflect compute rather than Python overhead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout, not whichever fusebench is installed

TASKS = ["kobest_boolq", "kobest_hellaswag", "korunsmile", "nsmc"]


def _load_model(
    name: str, hidden: int | None, layers: int | None, dtype: str, vocab: int | None = None
) -> tuple[Any, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = Path(name)
    if not path.is_dir():
        from fusion.zoo import cached_zoo

        path = cached_zoo() / name
        if not path.is_dir():
            raise SystemExit(f"--model {name}: neither a directory nor a zoo model")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch_dtype = torch.float32 if dtype == "float32" else getattr(torch, dtype)
    if hidden is None and layers is None and vocab is None:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        return model.eval(), tokenizer
    config = AutoConfig.from_pretrained(path)
    width = hidden or config.hidden_size
    heads = max(1, width // 64)
    updates = {
        "hidden_size": width,
        "num_hidden_layers": layers or config.num_hidden_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "intermediate_size": width * 8 // 3,
        "head_dim": width // heads,
    }
    if config.model_type == "gpt2":
        updates = {"n_embd": width, "n_layer": layers or config.n_layer, "n_head": heads}
    if hidden is None and layers is None:
        updates = {}
    if vocab is not None:
        updates["vocab_size"] = max(vocab, config.vocab_size)
    for key, value in updates.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    return model.eval(), tokenizer


def _requests_and_results(lm: Any, task: str, args: argparse.Namespace, task_manager: Any):
    """Run the task once through lm-eval; keep the loglikelihood requests it built."""
    from lm_eval import simple_evaluate

    captured: list = []
    inner = lm.loglikelihood

    def loglikelihood(requests: list, disable_tqdm: bool = False) -> list:
        captured.extend(requests)
        return inner(requests, disable_tqdm=True)

    lm.loglikelihood = loglikelihood  # lm-eval looks the method up on the instance
    try:
        results = simple_evaluate(
            model=lm,
            tasks=[task],
            limit=args.limit,
            num_fewshot=args.num_fewshot,
            log_samples=True,
            task_manager=task_manager,
            bootstrap_iters=0,
        )
    finally:
        del lm.loglikelihood
    return captured, results


def _fastest(
    backends: dict[str, Any], requests: list, repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Wall-clock and CPU seconds per backend to score ``requests``, each the smallest of
    ``repeats`` runs, the backends taking turns, so that a burst of other work on a shared
    machine cannot land on one backend only. CPU time (this process, all threads) is the
    steadier figure when other processes compete for the cores."""
    wall = dict.fromkeys(backends, float("inf"))
    cpu = dict.fromkeys(backends, float("inf"))
    for _ in range(repeats):
        for name, lm in backends.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            lm.loglikelihood(requests, disable_tqdm=True)
            wall[name] = min(wall[name], time.perf_counter() - started)
            cpu[name] = min(cpu[name], time.process_time() - started_cpu)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-llama", help="zoo name or model directory")
    parser.add_argument("--hidden", type=int, help="random-init at this hidden size")
    parser.add_argument("--layers", type=int, help="random-init with this many layers")
    parser.add_argument(
        "--vocab",
        type=int,
        help="random-init with this many output classes (the tokenizer never produces the "
        "extra ids, but every softmax covers them, as in a model with a large vocabulary)",
    )
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--limit", type=int, default=200, help="documents per task")
    parser.add_argument("--num-fewshot", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (fastest kept)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    import torch
    from lm_eval.models.huggingface import HFLM

    from harness.backends.shared_context import SharedContextLM
    from harness.logs import configure
    from tasks import catalog

    configure(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("harness").setLevel(logging.ERROR)  # truncation notices
    model, tokenizer = _load_model(args.model, args.hidden, args.layers, args.dtype, args.vocab)
    model.to(args.device)
    params = sum(p.numel() for p in model.parameters())
    common = dict(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    backends = {"hf": HFLM(**common), "fusebench-hf": SharedContextLM(**common)}
    task_manager = catalog.task_manager()
    print(
        f"model {args.model} ({model.config.model_type}, {params / 1e6:.2f} M parameters, "
        f"hidden {model.config.hidden_size}, {model.config.num_hidden_layers} layers, "
        f"vocab {model.config.vocab_size}, "
        f"{args.dtype}, {args.device}), {args.num_fewshot}-shot, limit {args.limit}, "
        f"batch size {args.batch_size}, torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'task':<18}{'docs':>6}{'hf docs/s':>12}{'shared docs/s':>15}{'ratio':>8}"
        f"{'cpu ratio':>11}{'max |dLL|':>12}{'greedy diff':>13}"
    )
    for task in args.tasks.split(","):
        outputs, requests = {}, []
        for name, lm in backends.items():
            requests, outputs[name] = _requests_and_results(lm, task, args, task_manager)
        seconds, cpu = _fastest(backends, requests, args.repeats)
        a, b = (outputs[n]["samples"][task] for n in backends)
        pairs = [
            (ra[0], rb[0])
            for sa, sb in zip(a, b, strict=True)
            for ra, rb in zip(sa["resps"], sb["resps"], strict=True)
        ]
        worst = max(abs(x[0] - y[0]) for x, y in pairs)
        flips = sum(x[1] != y[1] for x, y in pairs)
        docs = len(a)
        rate = {n: docs / s for n, s in seconds.items()}
        print(
            f"{task:<18}{docs:>6}{rate['hf']:>12.1f}{rate['fusebench-hf']:>15.1f}"
            f"{rate['fusebench-hf'] / rate['hf']:>7.2f}x"
            f"{cpu['hf'] / cpu['fusebench-hf']:>10.2f}x{worst:>12.1e}{flips:>13}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
