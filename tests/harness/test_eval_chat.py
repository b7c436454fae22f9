"""``fusebench eval --apply-chat-template``: parity of the shared-context scorer with lm-eval's
``hf`` model on chat-formatted prompts, the template recorded in the manifest, and a changed
template, system instruction or on/off making a rerun into the same directory a different run."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from reports import rundir

TASKS = ("kobest_boolq", "kobest_hellaswag")
SYSTEM = "너는 한국어 도우미다."
ALT = "{%- for m in messages %}ALT[{{ m.role }}] {{ m.content }}\n{% endfor %}ANSWER:"


def _eval(model: Path, out: Path, *extra: str) -> int:
    return main(["eval", str(model), "--batch-size", "4", "--output", str(out), "--quiet", *extra])


def _samples(run: Path, shots: int, task: str) -> list[dict]:
    path = rundir.samples_path(run, shots, task)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("shots", [0, 5])
def test_shared_context_scores_chat_prompts_as_lm_eval(zoo: Path, shots: int) -> None:
    """The scorer alone, quickly: lm-eval builds the chat-formatted requests (system
    instruction, few-shot turns) and fusebench's ``hf`` model scores them through lm-eval;
    lm-eval's own ``hf`` model scores the same requests within 1e-4. tiny-mistral's ChatML
    template writes BOS itself (its tokenizer prepends one too) and ends with the generation
    prompt "<|im_start|>assistant\\n", whose newline lm-eval moves to the continuation."""
    from lm_eval import simple_evaluate
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from harness.backends.shared_context import SharedContextLM
    from tasks import catalog

    # max_length 512: 5-shot contexts are cut from the left (lm-eval's rule, kept by both), and
    # the test stays quick; the slow end-to-end test below scores them whole.
    kwargs = dict(
        pretrained=str(zoo / "tiny-mistral"),
        batch_size=8,
        device="cpu",
        dtype="float32",
        max_length=512,
    )
    ours = SharedContextLM(**kwargs)
    results = simple_evaluate(
        model=ours,
        tasks=list(TASKS),
        num_fewshot=shots,
        limit=4,
        task_manager=catalog.task_manager(),
        bootstrap_iters=0,
        apply_chat_template=True,
        system_instruction=SYSTEM,
        fewshot_as_multiturn=True,
    )
    samples = [s for task in TASKS for s in results["samples"][task]]
    assert len(samples) == 8
    pairs = [tuple(a) for s in samples for a in s["arguments"]]
    for context, _ in pairs:
        assert context.startswith(f"<s><|im_start|>system\n{SYSTEM}<|im_end|>")
        assert context.endswith("<|im_start|>assistant\n")
        assert context.count("<|im_start|>user") == shots + 1
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    theirs = HFLM(**kwargs).loglikelihood(requests, disable_tqdm=True)
    scored = [r[0][0] for s in samples for r in s["resps"]]
    assert scored == pytest.approx([score for score, _ in theirs], abs=1e-4)


@pytest.mark.slow
def test_shared_context_equals_lm_eval_with_the_template(zoo: Path, tmp_path: Path) -> None:
    """End to end through ``fusebench eval``: ``--backend hf`` and ``--backend hf-lm-eval``
    with the template, a system instruction and multi-turn few-shot (lm-eval's default with a
    template) give the same prompts and per-document log-likelihoods within 1e-4."""
    model = zoo / "tiny-mistral"
    common = ["--tasks", ",".join(TASKS), "--num-fewshot", "0,5", "--limit", "8"]
    chat = ["--apply-chat-template", "--system-instruction", SYSTEM]
    runs = {}
    for backend in ("hf", "hf-lm-eval"):
        runs[backend] = tmp_path / backend
        assert _eval(model, runs[backend], *common, *chat, "--backend", backend) == 0
    template = (model / "chat_template.jinja").read_text(encoding="utf-8")
    manifest = rundir.read_manifest(runs["hf"])
    assert manifest.chat is not None
    assert manifest.chat.chat_template_sha256 == hashlib.sha256(template.encode()).hexdigest()
    assert manifest.chat.system_instruction == SYSTEM
    assert manifest.chat.fewshot_as_multiturn is True  # lm-eval's default with a template
    for shots in (0, 5):
        for task in TASKS:
            ours, theirs = (
                _samples(runs["hf"], shots, task),
                _samples(runs["hf-lm-eval"], shots, task),
            )
            assert len(ours) == len(theirs) == 8
            for a, b in zip(ours, theirs, strict=True):
                assert a["arguments"] == b["arguments"]
                context = a["arguments"][0][0]
                assert context.startswith(f"<s><|im_start|>system\n{SYSTEM}<|im_end|>")
                assert context.endswith("<|im_start|>assistant\n")
                assert context.count("<|im_start|>user") == shots + 1  # multi-turn few-shot
                for x, y in zip(a["resps"], b["resps"], strict=True):
                    assert x[0][0] == pytest.approx(y[0][0], abs=1e-4)


@pytest.fixture
def named(zoo: Path, tmp_path: Path) -> Path:
    """tiny-mistral with a second, named template (``additional_chat_templates/alt.jinja``)."""
    model = tmp_path / "model"
    model.mkdir()
    for item in (zoo / "tiny-mistral").iterdir():
        shutil.copy(item, model / item.name)
    (model / "additional_chat_templates").mkdir()
    (model / "additional_chat_templates" / "alt.jinja").write_text(ALT, encoding="utf-8")
    return model


def test_the_template_decides_whether_a_run_resumes(named: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    quick = ["--tasks", "kobest_boolq", "--limit", "2"]
    assert _eval(named, out, *quick, "--chat-template-name", "alt") == 0
    manifest = rundir.read_manifest(out)
    assert manifest.chat.apply_chat_template == "alt"
    assert manifest.chat.chat_template_sha256 == hashlib.sha256(ALT.encode()).hexdigest()
    # the named template is the one rendered (lm-eval 0.4.13 alone renders the default one)
    assert _samples(out, 0, "kobest_boolq")[0]["arguments"][0][0].startswith("ALT[user] ")
    capsys.readouterr()

    changed = {
        "chat template": ["--apply-chat-template"],  # the default template: other text
        "chat template; fewshot as multiturn": [],  # no template at all
        "system instruction": ["--chat-template-name", "alt", "--system-instruction", "hi"],
    }
    for what, args in changed.items():
        assert _eval(named, out, *quick, *args) == 2
        err = capsys.readouterr().err.strip()
        assert f"different settings ({what})" in err and "\n" not in err
    alt = named / "additional_chat_templates" / "alt.jinja"
    alt.write_text(ALT + " ", encoding="utf-8")  # the template's text edited in place
    assert _eval(named, out, *quick, "--chat-template-name", "alt") == 2
    assert "different settings (chat template)" in capsys.readouterr().err
    alt.write_text(ALT, encoding="utf-8")
    assert _eval(named, out, *quick, "--chat-template-name", "alt") == 0
    assert "skip kobest_boolq 0-shot" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fewshot-as-multiturn"], "--fewshot-as-multiturn needs --apply-chat-template"),
        (["--chat-template-name", "nope"], "'nope' is not available. Available template names"),
        (["--system-instruction", " "], "--system-instruction must not be empty"),
    ],
)
def test_chat_mistakes_are_one_line(
    args: list[str], message: str, named: Path, tmp_path: Path, capsys
) -> None:
    assert _eval(named, tmp_path / "run", *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_a_model_without_a_template_is_refused_before_loading(
    zoo: Path, tmp_path: Path, capsys
) -> None:
    model = tmp_path / "model"
    shutil.copytree(zoo / "tiny-llama", model)
    (model / "chat_template.jinja").unlink()
    assert _eval(model, tmp_path / "run", "--apply-chat-template") == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {model}: the tokenizer has no chat template (no chat_template in its files); "
        "evaluate it without --apply-chat-template"
    )
    assert not (tmp_path / "run").exists()


def test_a_manifest_from_before_chat_settings_resumes_without_them() -> None:
    """Old manifests have no ``chat``: they read as no template, the settings of a run
    without any chat option, so such a run still resumes."""
    from harness.evaluate import _comparable

    old = {
        "fusebench_version": "0",
        "git_commit": None,
        "model": {"name_or_path": "m", "local": True},
        "backend": {"name": "hf"},
        "requested_tasks": ["kobest_boolq"],
        "tasks": [],
        "num_fewshot": [0],
        "seeds": {},
        "limit": None,
        "started_at": "now",
    }
    loaded = rundir.Manifest.model_validate(old)
    assert loaded.chat is None
    new = loaded.model_copy(update={"chat": rundir.ChatSettings()})
    assert _comparable(loaded) == _comparable(new)
