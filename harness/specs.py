"""What ``eval``, ``generate`` and ``judge`` run with: each setting's default and help, once.

The CLI (``harness/cli``) takes its option defaults and help texts from these fields, so a
default is written in one place: here, or for judging in ``judges.settings`` (the library's
own settings, which these fields point at). Fixed choices are Enums (``Backend``,
``Server``, ``Template``) shared by the CLI and the specs; a spec stores their plain string
values. This module imports nothing heavy, so the CLI can read it on every start.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.backends import Backend, BackendOptions
from judges.prompts import Template
from judges.settings import ClientSettings, JudgeSettings

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_SEED",
    "DEFAULT_STOP",
    "Backend",
    "EvalSpec",
    "GenerateSpec",
    "JudgeRequest",
    "Server",
    "Template",
]

DEFAULT_SEED = 1234
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
# LogicKor's generator stops on these (chat-format markers of common model families), as in
# instructkr/LogicKor generator.py at commit 97a5e863 (its current vLLM generator: it added
# <|end|>, <|eot_id|> and <eos>, dropped </s> and <start_of_turn>, and skips special tokens).
LOGICKOR_VERSION = "instructkr/LogicKor generator.py @ 97a5e863"
DEFAULT_STOP = (
    "<|endoftext|>",
    "[INST]",
    "[/INST]",
    "<|im_end|>",
    "<|end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<eos>",
)

# Enum-typed fields hold the Enum's value (a str), defaults included.
_CONFIG = ConfigDict(use_enum_values=True, validate_default=True)


class Server(str, Enum):
    """``fusebench generate --serve``: the server fusebench starts for the model."""

    transformers = "transformers"
    vllm = "vllm"


class EvalSpec(BaseModel):
    """One ``fusebench eval`` run."""

    model_config = _CONFIG

    model: str = Field(description="Local model directory or Hub id.")
    tasks: list[str] = Field(
        default_factory=lambda: ["ko_fusellm"],
        description="Task or group names: fusebench's, lm-eval's or --include-path's (see "
        "`fusebench tasks --all`).",
    )
    include_path: list[Path] = Field(
        default_factory=list,
        description="Folder of lm-eval YAML tasks to add (as lm_eval --include_path); a task "
        "there replaces lm-eval's of the same name, never fusebench's.",
    )
    output: Path = Field(
        Path("runs/eval"), description="Run directory to write (resumed if it holds the same run)."
    )
    num_fewshot: list[int] = Field(
        default_factory=lambda: [0],
        description="Shot counts, one or a list such as 0,5 (all run in this command).",
    )
    backend: Backend = Field(
        Backend.hf,
        description="hf (transformers; each context run once per question), hf-lm-eval "
        "(lm-eval's own transformers model, for comparison) or vllm (GPU).",
    )
    options: BackendOptions = Field(default_factory=BackendOptions)
    limit: int | float | None = Field(
        None, description="Documents per task (a fraction if < 1); for quick checks only."
    )
    seed: int = Field(
        DEFAULT_SEED, description="Seed for python, numpy, torch and few-shot sampling."
    )
    overwrite: bool = Field(False, description="Replace a run with different settings in --output.")
    cache_dir: Path | None = Field(
        None, description="Cache model responses here, keyed by model weights, backend and dtype."
    )
    label: str | None = Field(
        None,
        description="Name of this run in reports, shown as its model name too (default: the "
        "run directory's name, and the model folder's name).",
    )
    apply_chat_template: bool | str = Field(
        False,
        description="Format each prompt with the tokenizer's chat template, as a chat model is "
        "used (lm-eval's --apply_chat_template).",
    )
    system_instruction: str | None = Field(
        None, description="System message put before each prompt (lm-eval's --system_instruction)."
    )
    fewshot_as_multiturn: bool | None = Field(
        None,
        description="Few-shot examples as earlier turns of the chat (default: on with a chat "
        "template, as in lm-eval); needs --apply-chat-template.",
    )
    nproc: int = Field(
        1,
        description="Processes, each with its own copy of the model (hf backend): rank i on "
        "cuda:i with --device cuda, the CPU threads shared on CPU; the numbers equal one "
        "process's. vllm: use --tensor-parallel-size / --data-parallel-size instead.",
    )


class GenerateSpec(BaseModel):
    """One ``fusebench generate`` run: LogicKor's questions answered by a model."""

    model_config = _CONFIG

    model: str = Field(
        description="Local model directory, Hub id, or (with --base-url) the name the server knows."
    )
    output: Path = Field(
        Path("runs/generate"),
        description="Run directory (resumed if it holds the same generation).",
    )
    strategies: list[str] = Field(
        default_factory=lambda: ["default", "1-shot", "cot-1-shot"],
        description="Prompt strategies (default, 1-shot, cot-1-shot).",
    )
    base_url: str | None = Field(
        None, description="An OpenAI-compatible server already serving MODEL."
    )
    serve: Server | None = Field(
        None,
        description="Start a server for MODEL: transformers (CPU or GPU) or vllm (GPU; untested here).",
    )
    chat_template: Path | None = Field(
        None, description="Jinja chat template for a model without one (--serve)."
    )
    max_tokens: int = Field(1024, description="Tokens per answer at most.")
    stop: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STOP),
        description="Stop sequences: text from one on is cut (default: LogicKor's list of chat "
        "markers).",
    )
    concurrency: int = Field(1, description="Questions in flight.")
    timeout: float = Field(600.0, description="Seconds per request.")
    api_key: str | None = Field(None, repr=False, exclude=True)  # never written
    api_key_env: str = Field(
        DEFAULT_API_KEY_ENV,
        description="Environment variable with the server's API key, if it needs one.",
    )
    device: str = Field("cpu", description="--serve transformers: device.")
    trust_remote_code: bool = Field(
        False, description="Run code shipped with the model (off unless asked)."
    )
    startup_timeout: float = Field(
        600.0,
        gt=0,
        description="--serve: seconds to wait for the server to answer (a first vLLM start "
        "downloads the model and compiles).",
    )
    tensor_parallel_size: int | None = Field(
        None, ge=1, description="--serve vllm: GPUs the model is spread over."
    )
    max_model_len: int | None = Field(
        None, ge=2, description="--serve vllm: context length (default: the model's)."
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] | None = Field(
        None, description="--serve vllm: weights' dtype (default: vLLM's auto)."
    )
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="--serve vllm: share of each GPU's memory (default 0.9)."
    )
    overwrite: bool = Field(False, description="Replace a generation with other settings.")
    quiet: bool = Field(False, description="No progress bar.")


class JudgeRequest(BaseModel):
    """One ``fusebench judge`` run. Judging's own defaults are ``judges.settings``'."""

    model_config = ConfigDict(frozen=True, use_enum_values=True, validate_default=True)

    target: Path = Field(
        description="Run directory, or LogicKor <org>/<model>/<strategy>.jsonl files or folders."
    )
    output: Path | None = Field(
        None,
        description="Folder for the judged files (required unless TARGET is a run directory, "
        "which is judged in place).",
    )
    judge_model: str = Field("gpt-4-1106-preview", description="Judge model name.")
    base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible endpoint.")
    api_key: str | None = Field(None, repr=False, exclude=True)  # never written anywhere
    api_key_env: str = Field(
        DEFAULT_API_KEY_ENV, description="Environment variable holding the API key."
    )
    public_base_url: str = Field(description="base_url without credentials, for records.")
    template: Template = Field(
        Template(JudgeSettings.template),
        description="logickor (LogicKor's judge prompts, exactly) or fusebench (the project's "
        "own Korean rubric).",
    )
    repeats: int = Field(
        JudgeSettings.repeats,
        description="Judgments per answer; the score is their mean, and every score and their "
        "spread are kept.",
    )
    temperature: float = Field(JudgeSettings.temperature, description="Judge temperature.")
    max_tokens: int | None = Field(
        JudgeSettings.max_tokens, description="Judge reply length limit (default: the server's)."
    )
    concurrency: int = Field(JudgeSettings.concurrency, description="Requests in flight at most.")
    requests_per_minute: int | None = Field(
        ClientSettings.requests_per_minute, description="Request budget per minute (default: none)."
    )
    timeout: float = Field(ClientSettings.timeout, description="Seconds per request.")
    max_retries: int = Field(
        ClientSettings.max_retries,
        description="Retries of a failed request (429, 5xx, timeout, connection, malformed reply).",
    )
    backoff: float = Field(
        ClientSettings.backoff_base, description="Base of the exponential backoff, seconds."
    )
    max_connection_failures: int = Field(
        ClientSettings.max_connection_failures,
        description="Stop the run (exit 1, judgments done so far kept for a rerun) after this "
        "many requests in a row failed to connect, each after all its retries.",
    )
    max_asks: int = Field(
        JudgeSettings.max_asks,
        description="Asks per judgment while the reply has no valid score; then it is recorded "
        "as unparsable.",
    )
    cache: Path | None = Field(
        None,
        description="Reply cache (SQLite) [default: $XDG_CACHE_HOME/fusebench/judge-cache.sqlite].",
    )
    use_cache: bool = Field(True, description="Cache replies.")
    price_in: float | None = Field(
        None,
        description="USD per 1M prompt tokens (default: known models' list price, else cost unknown).",
    )
    price_out: float | None = Field(None, description="USD per 1M completion tokens.")
    pairwise: list[Path] = Field(
        default_factory=list,
        description="Judge TARGET (the base) against this model pairwise, both answers in both "
        "orders (repeat the option for several); a run directory, a LogicKor model folder or "
        "file. Needs --output.",
    )
    limit: int | None = Field(
        None, description="Pairwise: judge only the first N questions of each file."
    )
    quiet: bool = Field(False, description="No progress bar.")
