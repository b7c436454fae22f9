"""``fuse chat`` with an ``evaluate`` section: the chat template on by default, fuse run's
fields that do not apply refused in one line, and after the merge the pivot, the pair targets
and the merge evaluated as chat models, compared and gated; a rerun evaluates nothing again.

The end-to-end test starts from finished pair targets (the pivot with its weights nudged, as
training would leave them), so it runs the merge and the evaluations, not DeepSpeed:
tests/fusion/test_fuse_chat.py trains the pairs for real."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoTokenizer

from fusion.chat import load_chat_config, pair_config
from fusion.config import ConfigError
from fusion.train.setup import run_paths
from harness.chat_format import multiturn
from harness.fuse_eval.chat_stage import MERGED, fuse_view, subjects
from harness.fuse_eval.plan import BASE, eval_spec, make_plan

SOURCES = ("tiny-gpt2", "tiny-mistral")


def _config(tmp_path: Path, zoo: Path, evaluate: dict | None, pivot: str = "tiny-llama") -> Path:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": "영화 정말 좋았다"}) + "\n", encoding="utf-8")
    raw: dict = {
        "work_dir": "work",
        "pivot": {"name": "pivot", "path": str(zoo / pivot)},
        "sources": [{"name": s, "path": str(zoo / s)} for s in SOURCES],
        "corpus": {"path": "corpus.jsonl"},
        "merge": {"method": "varm"},
    }
    if evaluate is not None:
        raw["evaluate"] = evaluate
    file = tmp_path / "chat.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


QUICK = {"tasks": ["kobest_boolq"], "num_fewshot": [0], "limit": 4, "device": "cpu"}


def test_the_template_is_on_by_default_and_an_explicit_false_is_kept(
    tmp_path: Path, zoo: Path
) -> None:
    chat = load_chat_config(_config(tmp_path, zoo, QUICK))
    assert chat.evaluate is not None and chat.evaluate.apply_chat_template is True
    view = fuse_view(chat)
    plan = make_plan(view)
    labels = []
    for subject in subjects(chat, tmp_path / "work" / "merged"):
        spec = eval_spec(view, plan, subject, tmp_path / "eval" / subject.label)
        assert spec.apply_chat_template is True and multiturn(spec) is True
        assert spec.tasks == ["kobest_boolq"] and spec.limit == 4 and spec.num_fewshot == [0]
        labels.append(subject.label)
    assert labels == [BASE, MERGED]  # no pair has finished: nothing of theirs to evaluate

    off = load_chat_config(_config(tmp_path, zoo, {**QUICK, "apply_chat_template": False}))
    assert off.evaluate is not None and off.evaluate.apply_chat_template is False
    spec = eval_spec(fuse_view(off), plan, subjects(off, tmp_path)[0], tmp_path / "e")
    assert spec.apply_chat_template is False and multiturn(spec) is False

    named = load_chat_config(_config(tmp_path, zoo, {**QUICK, "apply_chat_template": "default"}))
    assert named.evaluate is not None and named.evaluate.apply_chat_template == "default"
    assert load_chat_config(_config(tmp_path, zoo, None)).evaluate is None


@pytest.mark.parametrize(
    ("evaluate", "expected"),
    [
        ({"seeds": [0, 1]}, "field evaluate.seeds: not a fuse chat setting: fuse chat trains"),
        ({"sources": False}, "field evaluate.sources: not a fuse chat setting"),
        ({"logickor_strategy": "cot"}, "field evaluate.logickor_strategy: not a fuse chat"),
        ({"allow_contamination": True}, "field evaluate.allow_contamination: not a fuse chat"),
        ({"bogus": 1}, "field evaluate.bogus: Extra inputs are not permitted"),
        (
            {"apply_chat_template": False, "fewshot_as_multiturn": True},
            "field evaluate: fewshot_as_multiturn needs apply_chat_template",
        ),
    ],
)
def test_a_field_fuse_chat_does_not_use_is_one_line(
    tmp_path: Path, zoo: Path, evaluate: dict, expected: str
) -> None:
    path = _config(tmp_path, zoo, {**QUICK, **evaluate})
    with pytest.raises(ConfigError) as caught:
        load_chat_config(path)
    assert str(caught.value).startswith(f"{path.resolve()}: ") or str(path) in str(caught.value)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def _finish_pairs(config: Path, zoo: Path, scale: float = 0.01) -> None:
    """Each pair's training as finished: the pivot with noise of ``scale`` added to its
    weights, and the trainer's status saying so (what ``fusion.train.trainer.finished``
    reads)."""
    from transformers import AutoModelForCausalLM

    chat = load_chat_config(config)
    tokenizer = AutoTokenizer.from_pretrained(zoo / "tiny-llama")
    for index, source in enumerate(chat.sources):
        paths = run_paths(pair_config(chat, source))
        model = AutoModelForCausalLM.from_pretrained(zoo / "tiny-llama")
        generator = torch.Generator().manual_seed(index)
        with torch.no_grad():
            for weight in model.parameters():
                weight.add_(torch.randn(weight.shape, generator=generator) * scale)
        model.save_pretrained(paths.final)
        tokenizer.save_pretrained(paths.final)
        paths.status.write_text(json.dumps({"status": "finished"}), encoding="utf-8")


@pytest.mark.slow  # about 45 s: three runs of the command, five evaluations
def test_fuse_chat_evaluates_pivot_pairs_and_merge_as_chat_models_and_gates(
    tmp_path: Path, zoo: Path, run_fusebench
) -> None:
    # Pair targets far from the pivot (noise of 0.5): the merge's bits per byte rise well
    # past the pivot's, and the gate fails.
    tasks = ["kobest_boolq", "ko_bpb"]
    config = _config(tmp_path, zoo, {**QUICK, "tasks": tasks, "max_drop": 0.01})
    _finish_pairs(config, zoo, scale=0.5)
    done = run_fusebench("fuse", "chat", str(config), "--no-progress")
    work = tmp_path / "work"
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    labels = [BASE, "pair-tiny-gpt2", "pair-tiny-mistral", MERGED]
    digests = set()
    for label in labels:
        manifest = json.loads((work / "eval" / label / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["label"] == label
        chat = manifest["chat"]
        assert chat["apply_chat_template"] is True and chat["fewshot_as_multiturn"] is True
        digests.add(chat["chat_template_sha256"])
    assert len(digests) == 1 and None not in digests  # one template: the pivot's
    text = AutoTokenizer.from_pretrained(zoo / "tiny-llama").chat_template
    assert digests == {hashlib.sha256(text.encode("utf-8")).hexdigest()}

    compared = json.loads((work / "report" / "compare.json").read_text())
    runs = [(c["run"], c["base"]) for c in compared["comparisons"]]
    assert runs[0] == (MERGED, BASE) and (MERGED, "pair-tiny-gpt2") in runs
    assert compared["gate"]["max_drop"] == 0.01 and not compared["gate"]["passed"]
    failures = compared["gate"]["failures"]
    assert [(f["run"], f["task"]) for f in failures] == [(MERGED, "ko_bpb")]
    assert failures[0]["other"] > failures[0]["base"] + 0.01  # a rise: lower is better
    page = (work / "report" / "compare.md").read_text()
    assert "## merged vs base" in page and "## merged vs pair-tiny-mistral" in page
    assert "bits_per_byte" in page and "word_perplexity" not in page  # as fuse run's page
    out = done.stdout.splitlines()
    assert out[0] == f"model: {work / 'merged'}"
    assert "task (metric, setting): base / merged; merged - base [95% CI]" in out
    assert any(line.startswith("  kobest_boolq (acc") for line in out)
    assert any(line.startswith("FAIL: 1 task(s) dropped by more than 0.01") for line in out)
    assert out[-1] == f"comparison: {work / 'report' / 'compare.md'}"

    # A rerun: pairs, merge and every evaluation finished earlier; the same verdict.
    again = run_fusebench("fuse", "chat", str(config), "--no-progress")
    assert again.returncode == 1, again.stderr[-3000:]
    assert again.stderr.count("finished earlier") == 3
    assert again.stderr.count("skip kobest_boolq 0-shot") == len(labels)
    assert again.stderr.count("skip ko_bpb 0-shot") == len(labels)
    assert "loading" not in again.stderr

    # Another merge: only the merge is made again, and only its evaluation redone (its old
    # results are of weights no longer there); the pivot's and the pairs' are kept.
    raw = yaml.safe_load(config.read_text())
    raw["merge"] = {"method": "linear", "parameters": {"weight": 0.5}}
    config.write_text(yaml.safe_dump(raw))
    relinked = run_fusebench("fuse", "chat", str(config), "--no-progress")
    assert relinked.returncode in (0, 1) and "Traceback" not in relinked.stderr
    assert "merge: linear" in relinked.stderr
    assert "evaluate merged: the model was made again since: evaluated anew" in relinked.stderr
    assert relinked.stderr.count("skip kobest_boolq 0-shot") == len(labels) - 1


def test_a_pivot_without_a_chat_template_is_refused_before_any_work(
    tmp_path: Path, zoo: Path
) -> None:
    """In process (the command prints a HarnessError as one line, exit 2): refused before
    extraction, training or the merge."""
    import shutil

    from harness.errors import HarnessError
    from harness.fuse_eval.chat_stage import evaluate_chat

    plain = tmp_path / "plain"
    shutil.copytree(zoo / "tiny-llama", plain)
    tokenizer_config = plain / "tokenizer_config.json"
    data = json.loads(tokenizer_config.read_text())
    data.pop("chat_template", None)
    tokenizer_config.write_text(json.dumps(data))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    assert AutoTokenizer.from_pretrained(plain).chat_template is None
    config = _config(tmp_path, zoo, QUICK)
    raw = yaml.safe_load(config.read_text())
    raw["pivot"]["path"] = str(plain)
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(HarnessError) as caught:
        evaluate_chat(load_chat_config(config), progress=False)
    message = str(caught.value)
    assert message.startswith(f"{config.resolve()}: field evaluate.apply_chat_template: ")
    assert "the tokenizer has no chat template" in message and "\n" not in message
    assert "apply_chat_template: false evaluates without one" in message
    assert not (tmp_path / "work" / "stores").exists()
    assert not (tmp_path / "work" / "merged").exists()


def test_a_task_typo_is_one_line_before_any_work(tmp_path: Path, zoo: Path) -> None:
    from harness.fuse_eval.chat_stage import evaluate_chat

    config = _config(tmp_path, zoo, {**QUICK, "tasks": ["kobest_bolq"]})
    with pytest.raises(ConfigError) as caught:
        evaluate_chat(load_chat_config(config), progress=False)
    message = str(caught.value)
    assert message.startswith(f"{config.resolve()}: field evaluate.tasks: unknown task")
    assert "\n" not in message and not (tmp_path / "work" / "stores").exists()
