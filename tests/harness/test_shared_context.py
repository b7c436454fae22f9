"""The shared-context ``hf`` model gives lm-eval's ``hf`` numbers, request by request.

Both models run the same lm-eval tasks on the same tiny zoo models (three architectures,
zero- and few-shot, at full length and with contexts cut to 128 tokens); every loglikelihood
must agree within 1e-4, every is-greedy flag and every metric exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from harness.backends import mc_plan
from harness.backends.mc_strategies import Forward, KVCacheStrategy, PackedStrategy
from harness.backends.shared_context import (
    MODEL_NAME,
    SharedContextLM,
    encode_request,
    truncated_documents,
)
from harness.cli import main
from harness.errors import HarnessError
from reports import rundir
from tasks import catalog

TASKS = ["kobest_boolq", "kobest_hellaswag", "korunsmile", "nsmc"]
LIMIT = 10
TOLERANCE = 1e-4


def _pair(zoo: Path, model: str, **kwargs) -> tuple[HFLM, SharedContextLM]:
    common = dict(pretrained=str(zoo / model), device="cpu", dtype="float32", **kwargs)
    return HFLM(**common), SharedContextLM(**common)


def _evaluate(lm: HFLM, shots: int) -> dict:
    return simple_evaluate(
        model=lm,
        tasks=TASKS,
        num_fewshot=shots,
        limit=LIMIT,
        log_samples=True,
        task_manager=catalog.task_manager(),
    )


@pytest.mark.parametrize(
    ("model", "shots", "max_length"),
    [
        # Two in the default layer (cut prompts; absolute positions), the rest in the slow
        # one; tiny-mistral's scores are also checked there with its chat template.
        pytest.param("tiny-llama", 0, None, marks=pytest.mark.slow),
        ("tiny-llama", 2, 128),  # few-shot prompts cut from the left
        pytest.param("tiny-mistral", 0, 128, marks=pytest.mark.slow),
        pytest.param("tiny-mistral", 2, None, marks=pytest.mark.slow),
        ("tiny-gpt2", 2, None),  # absolute position embeddings
    ],
)
def test_every_request_matches_lm_eval_hf(
    zoo: Path, model: str, shots: int, max_length: int | None
) -> None:
    reference, shared = _pair(zoo, model, batch_size=4, max_length=max_length)
    expected, got = _evaluate(reference, shots), _evaluate(shared, shots)
    truncated = 0
    for task in TASKS:
        ref_samples, samples = expected["samples"][task], got["samples"][task]
        assert len(samples) == LIMIT
        for ref, mine in zip(ref_samples, samples, strict=True):
            assert mine["arguments"] == ref["arguments"]
            for (ref_ll, ref_greedy), (ll, greedy) in zip(
                (r[0] for r in ref["resps"]), (r[0] for r in mine["resps"]), strict=True
            ):
                assert ll == pytest.approx(ref_ll, abs=TOLERANCE), (task, mine["doc_id"])
                assert greedy == ref_greedy, (task, mine["doc_id"])
        assert got["results"][task] == expected["results"][task]
        truncated += truncated_documents(shared, got, task)
    # The truncation cases really cut contexts (and only they do).
    assert (truncated > 0) == (max_length is not None)


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("tiny-llama", "packed"),
        ("tiny-gpt2", "packed"),  # absolute positions: the tails' position ids matter
        ("tiny-llama", "cached"),
        ("tiny-llama", "cached-split"),
    ],
)
def test_mixed_requests_in_one_call(
    zoo: Path, model: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests lm-eval never sends together: contexts of many lengths, choices of different
    token counts (so the windows of one context differ once cut), a repeated request, an
    empty context, single-token choices; with every batch size the numbers are hf's, through
    the packed single pass (sdpa/eager attention) and through the KV-cache path (other
    attention kernels) with the continuations' tails in one pass each batch or in many."""
    if path == "cached-split":
        monkeypatch.setattr(mc_plan, "PASS_COST_TOKENS", 0)
        monkeypatch.setattr(mc_plan, "PASS_COST_SHARE", 0.0)
    texts = ["안녕하세요. 오늘 영화는 정말 재미있었다. " * 6, "짧은 글", "질문: 무엇인가요? 답변:"]
    choices = [" 예", " 아니오", " (긍정)", " 그렇다고 생각하지 않는다"]
    pairs = [(text, choice) for text in texts for choice in choices]
    pairs += [("", "처음부터"), ("짧은 글", " 예"), ("짧은 글", "!")]
    requests = [
        Instance("loglikelihood", {}, pair, i, metadata=("mixed", i, 1))
        for i, pair in enumerate(pairs)
    ]
    reference, _ = _pair(zoo, model, batch_size=8, max_length=48)
    expected = reference.loglikelihood(requests, disable_tqdm=True)
    assert any(len(reference.tok_encode(c + x)) > 49 for c, x in pairs)  # some are cut
    for batch_size in (1, 2, 8):
        shared = SharedContextLM(
            pretrained=reference.model,
            tokenizer=reference.tokenizer,
            batch_size=batch_size,
            max_length=48,
        )
        forward = Forward(shared.model, shared.device, None, None)
        shared.strategy = (
            PackedStrategy(forward, shared.model.dtype)
            if path == "packed"
            else KVCacheStrategy(forward)
        )
        scored = []
        monkeypatch.setattr(shared.strategy, "score", _spy(shared.strategy.score, scored))
        got = shared.loglikelihood(requests, disable_tqdm=True)
        assert scored  # the shared path ran, not lm-eval's fallback
        for (ref_ll, ref_greedy), (ll, greedy) in zip(expected, got, strict=True):
            assert ll == pytest.approx(ref_ll, abs=TOLERANCE)
            assert greedy == ref_greedy


def _spy(method, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return method(*args, **kwargs)

    return wrapper


def test_rolling_and_generation_are_hf_s(zoo: Path) -> None:
    reference, shared = _pair(zoo, "tiny-gpt2", batch_size=2)
    rolling = [Instance("loglikelihood_rolling", {}, ("오늘 영화는 정말 재미있었다.",), 0)]
    assert shared.loglikelihood_rolling(rolling) == reference.loglikelihood_rolling(rolling)
    gen = [Instance("generate_until", {}, ("질문: 무엇?", {"until": ["\n"], "max_gen_toks": 5}), 0)]
    out = shared.generate_until(gen)
    assert out == reference.generate_until(gen) and isinstance(out[0], str)


def test_empty_continuation_names_task_and_document(zoo: Path) -> None:
    _, shared = _pair(zoo, "tiny-llama", batch_size=2)
    fine = Instance("loglikelihood", {}, ("리뷰", " (긍정)"), 0, metadata=("nsmc_x", 6, 1))
    empty = Instance("loglikelihood", {}, ("리뷰", " "), 1, metadata=("nsmc_x", 7, 1))
    with pytest.raises(HarnessError, match=r"task nsmc_x, document 7: continuation ' ' is empty"):
        shared.loglikelihood([fine, empty])


def test_empty_answer_choice_in_a_task_fails_the_run_clearly(zoo: Path) -> None:
    from lm_eval.tasks._yaml_loader import load_yaml

    from tasks.loaders import load_benchmark

    # Document 1 has an empty answer choice (lm-eval itself checks only the first document).
    second = load_benchmark("nsmc")["test"][1]["document"]
    config = load_yaml(catalog.TASKS_DIR / "nsmc.yaml", resolve_func=True)
    config.update(
        task="nsmc_empty_choice",
        doc_to_choice=lambda doc: ["(부정)", "" if doc["document"] == second else "(긍정)"],
    )
    _, shared = _pair(zoo, "tiny-llama", batch_size=2)
    with pytest.raises(HarnessError, match="task nsmc_empty_choice, document 1: .* is empty"):
        simple_evaluate(model=shared, tasks=[config], limit=2, task_manager=catalog.task_manager())


def test_continuation_swallowed_by_its_context_is_an_error(zoo: Path) -> None:
    _, shared = _pair(zoo, "tiny-llama", batch_size=2)
    # A context whose last characters merge with the continuation into fewer tokens leaves
    # the continuation no tokens of its own; find one in this tokenizer's vocabulary.
    words = ("감사합니다", "있습니다", "했습니다", "그렇습니다", "입니다", "합니다", "하세요")
    found = [(w[:-1], w[-1]) for w in words if not encode_request(shared, w[:-1], w[-1])[1]]
    assert found, "no merging word found for this tokenizer"
    bad = Instance("loglikelihood", {}, found[0], 0, metadata=("t", 3, 1))
    with pytest.raises(
        HarnessError, match="task t, document 3: continuation .* tokenises to nothing"
    ):
        shared.loglikelihood([bad])


def test_registered_without_displacing_lm_eval_models() -> None:
    from lm_eval.api.registry import get_model

    assert get_model(MODEL_NAME) is SharedContextLM
    assert get_model("hf") is HFLM


@pytest.mark.parametrize("backend", ["hf", "hf-lm-eval"])
def test_manifest_counts_truncated_documents(zoo: Path, tmp_path: Path, backend: str) -> None:
    out = tmp_path / backend
    assert (
        main(
            [
                "eval",
                str(zoo / "tiny-llama"),
                "--tasks",
                "kobest_boolq,nsmc",
                "--limit",
                "5",
                "--num-fewshot",
                "2",
                "--max-length",
                "128",
                "--backend",
                backend,
                "--output",
                str(out),
            ]
        )
        == 0
    )
    manifest = rundir.read_manifest(out)
    assert manifest.backend.name == backend
    counts = {c.task: c.truncated for c in manifest.completed}
    assert all(c.n_samples == 5 for c in manifest.completed)
    # Independently: a document is cut when any context + choice is over 129 tokens.
    _, lm = _pair(zoo, "tiny-llama", batch_size=2, max_length=128)
    for task in ("kobest_boolq", "nsmc"):
        rows = rundir.samples_path(out, 2, task).read_text().splitlines()
        over = sum(
            any(len(lm.tok_encode(c + x)) > 129 for c, x in json.loads(row)["arguments"])
            for row in rows
        )
        assert counts[task] == over
    assert counts["kobest_boolq"] > 0  # 2-shot boolq prompts are far longer than 128 tokens


def test_context_without_tokens_is_an_error(zoo: Path) -> None:
    _, shared = _pair(zoo, "tiny-gpt2", batch_size=2)  # no BOS: "   " encodes to nothing
    bad = Instance("loglikelihood", {}, ("   ", "예"), 0, metadata=("t", 5, 1))
    with pytest.raises(HarnessError, match="task t, document 5: context '   ' has no tokens"):
        shared.loglikelihood([bad])


def test_sliding_window_models_fall_back_to_lm_eval_path(zoo: Path) -> None:
    """A sliding-window cache keeps only the window, so it cannot be shared: such models
    are scored by HFLM's own code, with its numbers exactly."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = zoo / "tiny-mistral"
    model = AutoModelForCausalLM.from_pretrained(path, sliding_window=16)
    tokenizer = AutoTokenizer.from_pretrained(path)
    common = dict(pretrained=model, tokenizer=tokenizer, batch_size=4)
    reference, shared = HFLM(**common), SharedContextLM(**common)
    requests = [
        Instance("loglikelihood", {}, ("오늘 영화는 정말 재미있었다. " * 4, choice), i)
        for i, choice in enumerate([" (긍정)", " (부정)"])
    ]
    expected = reference.loglikelihood(requests)
    assert shared.loglikelihood(requests) == expected
    assert shared.strategy is None
    # Had the config check missed it, the cache the model returns is checked as well.
    forced = SharedContextLM(**common)
    forced.strategy = KVCacheStrategy(Forward(forced.model, forced.device, None, None))
    assert forced.loglikelihood(requests) == expected
    assert forced.strategy is None


def test_strategy_is_chosen_once_at_construction(zoo: Path) -> None:
    from transformers import AutoModelForCausalLM

    _, shared = _pair(zoo, "tiny-llama", batch_size=2)
    assert isinstance(shared.strategy, PackedStrategy)  # sdpa on CPU
    tokenizer = shared.tokenizer
    model = AutoModelForCausalLM.from_pretrained(zoo / "tiny-llama", attn_implementation="eager")
    eager = SharedContextLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    assert isinstance(eager.strategy, PackedStrategy)
    model.config._attn_implementation = "flash_attention_2"  # takes no 4D mask (not run here)
    flash = SharedContextLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    assert isinstance(flash.strategy, KVCacheStrategy)
    auto = SharedContextLM(pretrained=model, tokenizer=tokenizer, batch_size="auto")
    assert auto.strategy is None  # HFLM's path sizes its own batches


def test_lm_eval_tokenises_and_calls_the_scoring_hook(
    zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lm-eval's ``TemplateLM.loglikelihood`` makes the tokens (``_encode_pair``, the empty
    context's prefix token) and hands them to ``_loglikelihood_tokens``; rolling windows go
    to HFLM's own ``_loglikelihood_tokens``."""
    reference, shared = _pair(zoo, "tiny-llama", batch_size=2)
    pairs = [("질문: 무엇? ", "예"), ("질문: 무엇? ", "아니오"), ("", "처음부터")]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    seen: list = []
    hook = shared._loglikelihood_tokens

    def spy(triples, *args, **kwargs):
        seen.append(list(triples))
        return hook(triples, *args, **kwargs)

    monkeypatch.setattr(shared, "_loglikelihood_tokens", spy)
    expected = reference.loglikelihood(requests, disable_tqdm=True)
    got = shared.loglikelihood(requests, disable_tqdm=True)
    assert [(s, list(c), list(x)) for s, c, x in seen[0]] == [
        (pair, *encode_request(reference, *pair)) for pair in pairs
    ]
    assert seen[0][2][1] == [reference.prefix_token_id]  # the empty context, as lm-eval does
    for (ref_ll, ref_greedy), (ll, greedy) in zip(expected, got, strict=True):
        assert ll == pytest.approx(ref_ll, abs=TOLERANCE) and greedy == ref_greedy
