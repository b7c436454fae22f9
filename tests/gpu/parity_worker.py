"""``python -m tests.gpu.parity_worker MODEL_DIR`` (GPU only): the hf and vllm extraction
backends on a few NSMC rows in fp32 with k = 21, compared position by position; prints one
JSON line of the largest differences. A process of its own, so that vLLM's memory is
given back when it exits (vLLM does not free it reliably inside a process)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def tie_free_mismatches(ids_a: np.ndarray, ids_b: np.ndarray, lps: np.ndarray) -> int:
    """Top-k slots whose ids differ where no neighbouring score ties within 1e-3."""
    gaps = np.abs(np.diff(lps, axis=-1)) < 1e-3
    tied = np.pad(gaps, ((0, 0), (0, 1))) | np.pad(gaps, ((0, 0), (1, 0)))
    return int(((ids_a != ids_b) & ~tied).sum())


def main(model: str) -> None:
    from transformers import AutoTokenizer

    from fusion.extract_backends.hf import HFBackend
    from fusion.extract_backends.vllm import VLLMBackend
    from tasks.datadir import data_dir

    lines = (data_dir() / "nsmc" / "ratings_test.txt").read_text("utf-8").splitlines()[1:9]
    tokenizer = AutoTokenizer.from_pretrained(model)
    batch = [tokenizer(line.split("\t")[1])["input_ids"] for line in lines]
    entry = SimpleNamespace(
        name=Path(model).name, path=model, revision=None, trust_remote_code=False
    )
    section = SimpleNamespace(
        dtype="float32",
        k=21,
        max_length=256,
        batch_size=8,
        tensor_parallel_size=1,
        gpu_memory_utilization=0.3,
    )
    hf = HFBackend(entry, section, "cuda").score(batch)
    vllm_backend = VLLMBackend(entry, section)
    got = vllm_backend.score(batch)
    report = {"rows": len(batch), "vocab": [vllm_backend.vocab_size], "ids": 0, "lp": 0.0}
    report.update(nll=0.0, last_ids=0, last_lp=0.0)
    for (ids_h, lp_h, nll_h), (ids_v, lp_v, nll_v) in zip(hf, got, strict=True):
        report["ids"] += tie_free_mismatches(ids_h, ids_v, lp_h)
        report["lp"] = max(report["lp"], float(np.abs(lp_h - lp_v).max()))
        report["nll"] = max(report["nll"], float(np.abs(nll_h - nll_v).max()))
        report["last_ids"] += tie_free_mismatches(ids_h[-1:], ids_v[-1:], lp_h[-1:])
        report["last_lp"] = max(report["last_lp"], float(np.abs(lp_h[-1] - lp_v[-1]).max()))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
