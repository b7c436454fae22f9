"""The vllm extraction backend without a GPU: the arguments it gives vLLM, the refusals made
before anything is loaded (through the real CLI, on real zoo models), and the conversion of
vLLM's prompt log-probabilities into the store's arrays, checked against the hf backend on a
real model. vLLM itself cannot run here: its output is built from the same model in the
structure vLLM documents (``RequestOutput.prompt_logprobs`` = ``[None, {id: Logprob}, ...]``,
``Logprob(logprob, rank, decoded_token)``); ``scripts/gpu_smoke.sh`` checks the real thing."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fusion.config import load_config
from fusion.extract_backends.vllm_plan import (
    llm_kwargs,
    plan,
    ranked_top,
    sampling_kwargs,
    scored,
)
from harness.cli import main


@dataclass
class Logprob:  # vllm.logprobs.Logprob's fields
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


def _config(fuse_config, tmp: Path, **extract: object):
    return load_config(fuse_config(tmp, ["하나 둘 셋", "넷 다섯"], extract=extract))


def test_llm_and_sampling_arguments(fuse_config, tmp_path: Path) -> None:
    config = _config(fuse_config, tmp_path, backend="vllm", k=21, max_length=512, dtype="auto")
    chosen = plan(config.target, config.extract)
    assert (chosen.context, chosen.context_key, chosen.vocab_rows) == (
        1024,
        "max_position_embeddings",
        3000,
    )
    kwargs = llm_kwargs(config.target, config.extract, chosen)
    assert kwargs["max_logprobs"] == 21 and kwargs["max_model_len"] == 513
    assert kwargs["dtype"] == "bfloat16" and kwargs["tensor_parallel_size"] == 1
    assert kwargs["model"] == config.target.path and "revision" not in kwargs
    assert sampling_kwargs(21) == {
        "max_tokens": 1,
        "temperature": 0.0,
        "prompt_logprobs": 21,
        "logprobs": 21,
        "detokenize": False,
    }


@pytest.mark.parametrize(
    ("extract", "expected"),
    [
        (
            {"max_length": 2048},
            "extract.max_length 2048 reaches tiny-llama's context of 1024 tokens (config.json "
            "max_position_embeddings); vLLM needs one more position for the token it "
            "generates: set extract.max_length to 1023 at most",
        ),
        ({"k": 3001}, "extract.k 3001 is over tiny-llama's vocabulary of 3000 tokens"),
    ],
)
def test_impossible_settings_are_refused_before_anything_is_written(
    fuse_config, tmp_path: Path, capsys, extract: dict, expected: str
) -> None:
    path = fuse_config(tmp_path, ["하나 둘 셋"], extract={"backend": "vllm", **extract})
    assert main(["fuse", "extract", str(path), "--nproc", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "work").exists()


def test_k_above_20_and_nproc_are_accepted_up_to_loading(
    fuse_config, tmp_path: Path, capfd
) -> None:
    """k = 21 passes every check (vLLM gets max_logprobs=21); with --nproc 2 extraction runs
    in one child process (not torchrun ranks) and says so; here the child stops where vLLM
    would be imported."""
    pytest.importorskip("torch")
    if __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed: this checks the CPU path")
    path = fuse_config(tmp_path, ["하나 둘 셋"], extract={"backend": "vllm", "k": 21})
    assert main(["fuse", "extract", str(path), "--nproc", "2", "--no-progress"]) == 2
    err = capfd.readouterr().err
    assert "extraction runs in one process (not 2)" in err
    assert "error: extract.backend vllm needs the vllm extra and a CUDA GPU" in err  # the child's
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("extraction failed in a worker (exit code 2); its message is above")
    )
    assert not list((tmp_path / "work").glob("stores/*/shard-*"))


def test_vocabulary_is_the_checkpoints_not_the_configs(
    fuse_config, zoo: Path, tmp_path: Path, capsys
) -> None:
    model = tmp_path / "edited"
    shutil.copytree(zoo / "tiny-llama", model)
    config = json.loads((model / "config.json").read_text("utf-8"))
    config["vocab_size"] = 3200
    (model / "config.json").write_text(json.dumps(config), "utf-8")
    path = fuse_config(
        tmp_path,
        ["하나"],
        target={"name": "edited", "path": str(model)},
        extract={"backend": "vllm"},
    )
    assert main(["fuse", "extract", str(path)]) == 2
    err = capsys.readouterr().err
    # The model folder's own check (fusion/model_dir.py) names it before vLLM is started.
    assert (
        "edited/config.json: vocab_size 3200 does not match the weights' embedding rows 3000" in err
    )
    # A tied model (no lm_head in the file) is read from its input embedding.
    gpt2 = SimpleNamespace(
        name="tiny-gpt2", path=str(zoo / "tiny-gpt2"), revision=None, trust_remote_code=False
    )
    section = SimpleNamespace(max_length=256, k=5)
    assert (
        plan(gpt2, section).vocab_rows
        == json.loads((zoo / "tiny-gpt2" / "config.json").read_text("utf-8"))["vocab_size"]
    )


def test_ties_keep_vllms_rank_order_and_the_extra_gold_token_drops_out() -> None:
    entries = {
        7: Logprob(-1.0, rank=2),
        3: Logprob(-1.0, rank=1),  # tied with 7: vLLM ranked it first
        9: Logprob(-2.0, rank=3),
        42: Logprob(-9.0, rank=57),  # the gold token, added beside the top-3
    }
    ids, lps = ranked_top(entries, 3)
    assert ids.tolist() == [3, 7, 9] and lps.tolist() == [-1.0, -1.0, -2.0]
    ids, lps = ranked_top({5: Logprob(-0.5)}, 2)  # fewer than k: padded like hf's
    assert ids.tolist() == [5, -1] and lps[1] == -np.inf


def _vllm_outputs(model, batch: list[list[int]], k: int) -> list[SimpleNamespace]:
    """What vLLM documents for prompt_logprobs=k, logprobs=k, max_tokens=1, computed with the
    same model: per prompt token t >= 1 the top-k predicting it (ranks 1..k) plus the token
    itself with its own rank; the generated token's top-k."""
    import torch

    outputs = []
    for ids in batch:
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        top = logp.topk(k, dim=-1)

        def position(t: int, logp=logp, top=top) -> dict[int, Logprob]:
            entries = {
                int(i): Logprob(float(v), rank=r + 1)
                for r, (i, v) in enumerate(zip(top.indices[t], top.values[t], strict=True))
            }
            return entries

        prompt: list = [None]
        for t in range(1, len(ids)):
            entries = position(t - 1)
            gold = ids[t]
            if gold not in entries:
                rank = int((logp[t - 1] > logp[t - 1, gold]).sum()) + 1
                entries[gold] = Logprob(float(logp[t - 1, gold]), rank=rank)
            prompt.append(entries)
        last = SimpleNamespace(logprobs=[position(len(ids) - 1)])
        outputs.append(SimpleNamespace(prompt_logprobs=prompt, outputs=[last]))
    return outputs


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2", "tiny-qwen2", "tiny-mistral"])
def test_conversion_matches_the_hf_backend(zoo: Path, nsmc_rows, name: str) -> None:
    """Positions, gold NLL and the last position from vLLM's structure (built here by an
    independent route: a dense log-softmax over the whole vocabulary, ranks counted) equal the
    hf backend's arrays on the same fp32 model, for every zoo tokenizer on real NSMC reviews
    (ids equal, log-probabilities within 1e-5)."""
    from transformers import AutoTokenizer

    from fusion.extract_backends.hf import HFBackend

    entry = SimpleNamespace(path=str(zoo / name), revision=None, trust_remote_code=False)
    section = SimpleNamespace(dtype="float32", k=21, batch_size=4)
    hf = HFBackend(entry, section, "cpu")
    tokenizer = AutoTokenizer.from_pretrained(zoo / name)
    texts = ["영화가 정말 재미있다", "별로", "최고의 배우들", *nsmc_rows(8)]
    batch = [tokenizer(t)["input_ids"] for t in texts]
    expected = hf.score(batch)
    got = scored(batch, _vllm_outputs(hf.model, batch, 21), 21)
    for (ids_h, lp_h, nll_h), (ids_v, lp_v, nll_v) in zip(expected, got, strict=True):
        assert (ids_h == ids_v).all()
        np.testing.assert_allclose(lp_v, lp_h, atol=1e-5)
        np.testing.assert_allclose(nll_v, nll_h, atol=1e-5)
        assert nll_v[-1] == 0


def test_store_records_the_dtype_used(fuse_config, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from fusion.extract import manifest_for

    for backend, expected in (("hf", "float32"), ("vllm", "bfloat16")):
        config = _config(fuse_config, tmp_path, backend=backend, dtype="auto", device="cpu")
        tokenizer = AutoTokenizer.from_pretrained(config.target.path)
        manifest = manifest_for(config, config.target, tokenizer, "fp", 2, 3000)
        assert manifest.settings["dtype"] == expected


def test_a_backend_without_a_batch_size_gets_whole_shards(
    fuse_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nsmc_rows
) -> None:
    """batch_rows None (vllm's): each score() call gets a whole shard (4, 4, 2 rows)."""
    import fusion.extract_backends as backends
    from fusion.extract import Rank, extract

    calls: list[int] = []
    real = backends.make_backend

    def whole_shards(*args):
        backend = real(*args)
        backend.batch_rows = None
        score = backend.score
        backend.score = lambda batch: calls.append(len(batch)) or score(batch)
        return backend

    monkeypatch.setattr(backends, "make_backend", whole_shards)
    config = load_config(fuse_config(tmp_path, nsmc_rows(10)))
    extract(config, Rank(0, 1), progress=False)
    assert calls == [4, 4, 2] * 2  # target, then source
