"""``fusebench eval --apply-chat-template``: prompts formatted as a chat model is used.

lm-eval does the formatting (``simple_evaluate(apply_chat_template=, system_instruction=,
fewshot_as_multiturn=)``); this module checks the settings as lm-eval's own command line does,
resolves the template before anything is loaded (so a model without one is refused at once, and
the manifest records the template's sha256, one of the settings a resumed run must share), and
makes the model render with exactly that text. lm-eval 0.4.13 resolves a template *name* only
for its logs: its HF and vLLM models render with the tokenizer's default template whatever the
name. Giving the resolved text to the model's ``chat_template_args`` makes a named template the
one used, and the recorded digest the digest of what was rendered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from harness.errors import HarnessError
from harness.specs import EvalSpec
from reports.rundir import ChatSettings, ModelInfo


def multiturn(spec: EvalSpec) -> bool:
    """lm-eval's rule: few-shot examples are turns of the chat whenever a template is applied,
    unless turned off; asking for them without a template is an error (``check``)."""
    if spec.fewshot_as_multiturn is None:
        return bool(spec.apply_chat_template)
    return spec.fewshot_as_multiturn


def check(spec: EvalSpec) -> None:
    """The settings' own mistakes, before anything is loaded (lm-eval's EvaluatorConfig)."""
    if spec.fewshot_as_multiturn and not spec.apply_chat_template:
        raise HarnessError("--fewshot-as-multiturn needs --apply-chat-template (as in lm-eval)")
    if isinstance(spec.apply_chat_template, str) and not spec.apply_chat_template.strip():
        raise HarnessError("--chat-template-name must not be empty")
    if spec.system_instruction is not None and not spec.system_instruction.strip():
        raise HarnessError("--system-instruction must not be empty")


def settings(spec: EvalSpec) -> dict[str, Any]:
    """``simple_evaluate``'s keyword arguments for these settings."""
    return {
        "apply_chat_template": spec.apply_chat_template,
        "system_instruction": spec.system_instruction,
        "fewshot_as_multiturn": multiturn(spec),
    }


def _tokenizer(model: ModelInfo, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(
            model.name_or_path, revision=model.revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HarnessError(f"{model.name_or_path}: could not load its tokenizer: {first}") from None


def template_text(tokenizer: Any, value: bool | str, model: str) -> str:
    """The template lm-eval selects for ``value`` (``TemplateLM.chat_template``: a name picks
    from a tokenizer's named templates; True the default one); a model without one is refused."""
    from lm_eval.api.model import TemplateLM

    try:
        text = TemplateLM.chat_template(SimpleNamespace(tokenizer=tokenizer), value)  # type: ignore[arg-type]
    except ValueError as err:  # a name the tokenizer lacks, several templates and no default
        raise HarnessError(f"{model}: {err}") from None
    if not text:
        raise HarnessError(
            f"{model}: the tokenizer has no chat template (no chat_template in its files); "
            "evaluate it without --apply-chat-template"
        )
    return text


@dataclass
class Resolved:
    """The manifest's record, the template text (None without one) and a note to show."""

    record: ChatSettings
    text: str | None = None
    note: str | None = None


def resolve(spec: EvalSpec, model: ModelInfo) -> Resolved:
    """The settings checked and the template resolved, from the tokenizer alone."""
    check(spec)
    text = note = digest = None
    if spec.apply_chat_template:
        tokenizer = _tokenizer(model, spec.options.trust_remote_code)
        text = template_text(tokenizer, spec.apply_chat_template, spec.model)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        named = isinstance(spec.apply_chat_template, str)
        if named and not isinstance(tokenizer.chat_template, dict):
            note = (
                f"--chat-template-name {spec.apply_chat_template}: the tokenizer has one chat "
                "template, not named ones; that one is used (as lm-eval does)"
            )
    record = ChatSettings(
        apply_chat_template=spec.apply_chat_template,
        chat_template_sha256=digest,
        system_instruction=spec.system_instruction,
        fewshot_as_multiturn=multiturn(spec),
    )
    return Resolved(record, text, note)


def use_template(lm: Any, text: str) -> None:
    """Make ``lm`` render with ``text`` (its ``apply_chat_template`` passes
    ``chat_template_args`` to the tokenizer's, which takes a template text as ``chat_template``)."""
    if not hasattr(lm, "chat_template_args"):
        raise HarnessError(f"{type(lm).__name__}: this backend cannot apply a chat template")
    lm.chat_template_args = {**(lm.chat_template_args or {}), "chat_template": text}
