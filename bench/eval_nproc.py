"""``fusebench eval --nproc 2`` against ``--nproc 1``: wall time of the whole command.

Each run is the command a user types (a fresh process: start-up, model load, tokenisation,
scoring, the run directory), on the same model, task, documents and batch size, into a fresh
run directory; the runs alternate (1, N, 1, N, ...) and the fastest of ``--repeat`` counts. Printed: each wall time, the ratio
(1-process time / N-process time; above 1 is faster), and the check that the numbers agree
(the metrics equal, the largest per-document log-likelihood difference).

    PYTHONPATH=. python bench/eval_nproc.py --model tiny-llama --task kobest_boolq --limit 500
    PYTHONPATH=. python bench/eval_nproc.py --hidden 256 --layers 4 --limit 500

``--model`` is a zoo name (built into .cache/ on first use) or a model directory; ``--hidden``
and ``--layers`` random-initialise a wider or deeper model of its architecture (as
bench/mc_scoring.py does), so that the figure reflects compute rather than start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout, not whichever fusebench is installed
sys.path.insert(0, str(REPO / "bench"))

CLI = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _model_dir(args: argparse.Namespace, scratch: Path) -> Path:
    if args.hidden is None and args.layers is None:
        path = Path(args.model)
        if path.is_dir():
            return path
        from fusion.zoo import cached_zoo

        path = cached_zoo() / args.model
        if not path.is_dir():
            raise SystemExit(f"--model {args.model}: neither a directory nor a zoo model")
        return path
    from mc_scoring import _load_model

    model, tokenizer = _load_model(args.model, args.hidden, args.layers, "float32")
    out = scratch / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _run(model: Path, out: Path, nproc: int, args: argparse.Namespace) -> float:
    argv = [
        "eval",
        str(model),
        "--tasks",
        args.task,
        "--limit",
        str(args.limit),
        "--batch-size",
        str(args.batch_size),
        "--device",
        "cpu",
        "--quiet",
        "--nproc",
        str(nproc),
        "--output",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLI, *argv], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"--nproc {nproc} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def _loglikelihoods(run: Path, task: str) -> list[list[float]]:
    path = run / "0-shot" / "samples" / f"{task}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [[float(r[0][0]) for r in row["resps"]] for row in rows]


def _results(run: Path) -> dict:
    return json.loads((run / "0-shot" / "results.json").read_text(encoding="utf-8"))["results"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-llama")
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--task", default="kobest_boolq")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import torch

    print(
        f"machine: {_cpu()}, {os.cpu_count()} CPU threads, "
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads in one process), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="eval-nproc-") as scratch:
        model = _model_dir(args, Path(scratch))
        runs: dict[int, list[float]] = {1: [], args.nproc: []}
        for i in range(args.repeat):  # alternated, so that a machine's load drift hits both
            for nproc in runs:
                runs[nproc].append(_run(model, Path(scratch) / f"n{nproc}-{i}", nproc, args))
        times = {nproc: min(seconds) for nproc, seconds in runs.items()}
        for nproc, seconds in runs.items():
            print(f"--nproc {nproc}: {', '.join(f'{t:.1f}' for t in seconds)} s")
        one, many = Path(scratch) / "n1-0", Path(scratch) / f"n{args.nproc}-0"
        same = _results(one) == _results(many)
        a, b = _loglikelihoods(one, args.task), _loglikelihoods(many, args.task)
        diff = max(
            abs(x - y) for xs, ys in zip(a, b, strict=True) for x, y in zip(xs, ys, strict=True)
        )
    print(
        f"{args.task}, {args.limit} documents, {model.name}, batch size {args.batch_size}: "
        f"--nproc 1 {times[1]:.1f} s, --nproc {args.nproc} {times[args.nproc]:.1f} s, "
        f"ratio {times[1] / times[args.nproc]:.2f}x; metrics identical: {same}; "
        f"largest per-document log-likelihood difference {diff:.2e}"
    )


if __name__ == "__main__":
    main()
