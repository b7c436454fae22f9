"""Peak resident memory of merging three models, against the size of one model.

    PYTHONPATH=. python bench/merge_memory.py            # ~95 MB Llama (hidden 512, 6 layers)
    PYTHONPATH=. python bench/merge_memory.py --quick    # seconds; a smoke run (fixed costs dominate)

Builds a random-initialised Llama with the zoo's tiny-llama tokenizer (the pivot) and three
perturbed copies (the targets), then merges the three against the pivot in one child process
per run, side by side:

- naive: load the pivot's and the three targets' state dicts whole, VaRM them, save;
- varm: ``fusebench merge`` with method varm (fusebench's streaming merge);
- ties: ``fusebench merge`` with method ties (mergekit's executor).

Each child imports everything first, records its resident set, resets the kernel's
high-water mark (``/proc/self/clear_refs``), merges, and reads ``VmHWM``. The figure is the
growth (peak minus the resident set after imports) over the size of one model's weights;
the import baseline (torch, transformers, mergekit: a few hundred MB whatever the model) is
printed beside it. Goal: below 2.5x for three inputs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = ("naive", "varm", "ties")


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def build_inputs(
    root: Path, hidden: int, layers: int, zoo: Path | None = None
) -> tuple[Path, list[Path]]:
    """A random Llama of the given size (tiny-llama's tokenizer from ``zoo``, by default the
    checkout's cached zoo) and three perturbed copies."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from fusion.zoo import cached_zoo

    tokenizer = AutoTokenizer.from_pretrained((zoo or cached_zoo()) / "tiny-llama")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).float()
    pivot = root / "pivot"
    model.save_pretrained(pivot)
    tokenizer.save_pretrained(pivot)
    original = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    targets = []
    for index in range(3):
        generator = torch.Generator().manual_seed(index + 1)
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                tensor.copy_(original[name] + 0.01 * torch.randn(tensor.shape, generator=generator))
        targets.append(root / f"target-{index}")
        model.save_pretrained(targets[-1])
    return pivot, targets


def _naive(pivot: Path, targets: list[Path], out: Path) -> None:
    """The baseline: every state dict in memory at once, merged, saved."""
    from safetensors.torch import load_file, save_file

    from fusion.merge.varm import merge_tensor, varm_weights

    base = load_file(str(pivot / "model.safetensors"))
    models = [load_file(str(t / "model.safetensors")) for t in targets]
    merged = {}
    for name, tensor in base.items():
        tensors = [m[name] for m in models]
        weights = varm_weights([float((t - tensor).double().square().mean()) for t in tensors])
        merged[name] = merge_tensor(tensors, weights)
    out.mkdir(parents=True)
    save_file(merged, str(out / "model.safetensors"))


def _fusebench(method: str, pivot: Path, targets: list[Path], out: Path) -> None:
    from fusion.merge.run import merge
    from fusion.merge.spec import MergeSpec

    parameters = {"weight": 0.3, "density": 0.6} if method == "ties" else {}
    spec = MergeSpec(
        method=method,
        base_model=str(pivot),
        parameters=parameters,
        models=[{"model": str(t)} for t in targets],
    )
    merge(spec, out, progress=False)


def child(run: str, root: Path) -> None:
    """One measured merge; prints JSON with the resident set before and the peak (KiB)."""
    import mergekit.merge  # noqa: F401  (imports before the baseline is taken)
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import fusion.merge.run  # noqa: F401

    pivot, targets = root / "pivot", [root / f"target-{i}" for i in range(3)]
    out = root / f"out-{run}"
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    if run == "naive":
        _naive(pivot, targets, out)
    else:
        _fusebench(run, pivot, targets, out)
    print(json.dumps({"run": run, "before_kib": before, "peak_kib": _status_kib("VmHWM")}))


def measure(run: str, root: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", run, "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{run} failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(root / f"out-{run}", ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A ~3 MB model (for tests).")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"Subset of {','.join(RUNS)}.")
    parser.add_argument("--zoo", type=Path, help="A built zoo (default: the checkout's .cache).")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.root)
        return
    hidden, layers = (128, 2) if args.quick else (args.hidden, args.layers)
    with tempfile.TemporaryDirectory(prefix="merge-memory-") as tmp:
        root = Path(tmp)
        pivot, _ = build_inputs(root, hidden, layers, args.zoo)
        size_kib = (pivot / "model.safetensors").stat().st_size / 1024
        print(
            f"model: Llama hidden {hidden}, {layers} layers, {size_kib / 1024:.1f} MiB of "
            "weights; three targets merged against the pivot"
        )
        print(
            f"{'run':<6} {'baseline MiB':>12} {'peak MiB':>9} {'growth MiB':>10} "
            f"{'x one model':>11}"
        )
        results = {}
        for run in args.runs.split(","):
            result = measure(run, root)
            growth = result["peak_kib"] - result["before_kib"]
            results[run] = growth / size_kib
            print(
                f"{run:<6} {result['before_kib'] / 1024:>12.0f} {result['peak_kib'] / 1024:>9.0f} "
                f"{growth / 1024:>10.1f} {results[run]:>10.2f}x"
            )
        if "naive" in results:
            for run in results:
                if run != "naive":
                    print(
                        f"ratio {run}: {results[run]:.2f}x one model "
                        f"(naive {results['naive']:.2f}x; {results['naive'] / results[run]:.1f}x less)"
                    )


if __name__ == "__main__":
    main()
