"""LogicKor in a fusion run: base and fused answer it and a judge scores them, when (and only
when) a judge is named in the environment. Nothing else stands in for a judge: a tiny model
would score noise, so without one the report says LogicKor was not judged and how to enable it.

The answers and judgments go into the models' evaluation run directories
(``eval/<label>/logickor/<strategy>.jsonl``), where the report loaders find them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from fusion.config import FuseConfig
from harness.fuse_eval.plan import default_device, field_error
from harness.judging import public_url
from runrecords.errors import UserError

BASE_URL_ENV = "FUSEBENCH_JUDGE_BASE_URL"
MODEL_ENV = "FUSEBENCH_JUDGE_MODEL"
KEY_ENV = "FUSEBENCH_JUDGE_API_KEY"
NOT_JUDGED = (
    f"LogicKor was not judged: set {BASE_URL_ENV} and {MODEL_ENV} (and {KEY_ENV} if the "
    "judge needs a key) to have base and fused answer it and a judge score them"
)
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class JudgeSetupError(UserError):
    """The judge variables are set but cannot be used as they are."""


@dataclass(frozen=True)
class Judge:
    """The judge the environment names; the key is held here only, never written."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)

    @property
    def public_base_url(self) -> str:
        return public_url(self.base_url)

    def identity(self) -> dict[str, str]:
        """What a record may say about the judge (no key)."""
        return {"judge_model": self.model, "base_url": self.public_base_url}


def judge_from_env(environ: Mapping[str, str] = os.environ) -> Judge | None:
    """The judge named by FUSEBENCH_JUDGE_BASE_URL and FUSEBENCH_JUDGE_MODEL, or None."""
    base_url, model = environ.get(BASE_URL_ENV, ""), environ.get(MODEL_ENV, "")
    if not base_url and not model:
        return None
    if not base_url or not model:
        missing = MODEL_ENV if base_url else BASE_URL_ENV
        raise JudgeSetupError(f"{missing} is not set: LogicKor judging needs both variables")
    key = environ.get(KEY_ENV) or None
    if key is None and urlsplit(base_url).hostname not in _LOCAL_HOSTS:
        raise JudgeSetupError(
            f"{KEY_ENV} is not set: the judge at {public_url(base_url)} needs an API key "
            "(keys are read from the environment only)"
        )
    return Judge(base_url=base_url, model=model, api_key=key)


def check_strategy(config: FuseConfig) -> None:
    """``evaluate.logickor_strategy`` must be one of LogicKor's prompt strategies."""
    from tasks.logickor import load_templates

    section = config.evaluate
    assert section is not None
    known = load_templates().strategies
    if section.logickor_strategy not in known:
        raise field_error(
            config,
            "evaluate.logickor_strategy",
            f"unknown strategy {section.logickor_strategy!r} (known: {', '.join(known)})",
        )


def _judged(run: Path, strategy: str, judge: Judge) -> bool:
    """Whether this judge already scored every answer of ``strategy`` in ``run``."""
    from harness.generate import LOGICKOR_DIR
    from harness.judging import RECORD

    folder = run / LOGICKOR_DIR
    answers, record = folder / f"{strategy}.jsonl", folder / RECORD
    if not answers.is_file() or not record.is_file():
        return False
    seen = json.loads(record.read_text(encoding="utf-8"))
    if {k: seen.get(k) for k in judge.identity()} != judge.identity():
        return False
    lines = answers.read_text(encoding="utf-8").split("\n")  # not splitlines: runrecords.jsonl
    rows = [json.loads(line) for line in lines if line.strip()]
    return bool(rows) and all("query_single" in r and "query_multi" in r for r in rows)


def answer_and_judge(
    config: FuseConfig,
    run: Path,
    model: str,
    judge: Judge,
    *,
    trust_remote_code: bool,
    quiet: bool,
    console: Console,
) -> None:
    """``model`` answers LogicKor into ``run`` (``fusebench generate`` with a server it
    starts), then ``judge`` scores the answers in place (``fusebench judge``); each step
    resumes, and a finished one is skipped."""
    from harness.generate import run_generate
    from harness.judging import run_judge
    from harness.specs import GenerateSpec, JudgeRequest

    section = config.evaluate
    assert section is not None
    strategy = section.logickor_strategy
    options: dict = {}
    if section.logickor_max_tokens is not None:
        options["max_tokens"] = section.logickor_max_tokens
    if section.logickor_stop is not None:
        options["stop"] = section.logickor_stop
    done = run_generate(
        GenerateSpec(
            model=model,
            output=run,
            strategies=[strategy],
            serve="vllm" if section.backend == "vllm" else "transformers",
            device=section.device or default_device(),
            trust_remote_code=trust_remote_code,
            quiet=quiet,
            **options,
        ),
        console,
    )
    counts = done.get(strategy, {})
    console.print(
        f"LogicKor {strategy} ({run.name}): {counts.get('generated', 0)} questions answered now, "
        f"{counts.get('already_done', 0)} earlier"
    )
    if _judged(run, strategy, judge):
        console.print(f"LogicKor {strategy} ({run.name}): judged earlier by {judge.model}")
        return
    run_judge(
        JudgeRequest(
            target=run,
            judge_model=judge.model,
            base_url=judge.base_url,
            api_key=judge.api_key,
            api_key_env=KEY_ENV,
            public_base_url=judge.public_base_url,
            quiet=quiet,
        ),
        console,
    )
