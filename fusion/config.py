"""A fusion run's YAML config: one file, one section per stage (extract, align, fuse, train).

Every stage command (``fusebench fuse extract|align|train|run CONFIG``) reads the same file;
each stage validates its own section. Paths in the file are relative to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fusion.errors import FusionError
from fusion.train.config import TrainSection
from runrecords.atomic import blocking_file

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(FusionError):
    """The config file is missing, not YAML, or a field is wrong (the message names it)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelEntry(_Section):
    name: str = Field(description="Short name: the store directory under work_dir/stores/.")
    path: str = Field(description="Local directory or Hub id.")
    revision: str | None = None
    trust_remote_code: bool = False


class CorpusSection(_Section):
    path: str | None = Field(
        None,
        description="JSONL (field `text_field`, or `messages` conversations), .txt or .tsv "
        "file, or a directory of them.",
    )
    shared: Literal["nsmc", "kobest_boolq_chat"] | None = Field(
        None,
        description="From the shared data directory (FUSEBENCH_DATA_DIR): nsmc (review texts) "
        "or kobest_boolq_chat (the BoolQ train split as conversations).",
    )
    format: Literal["auto", "jsonl", "messages", "text", "tsv"] = Field(
        "auto",
        description="auto: by suffix (.jsonl: conversations when its rows have `messages`, "
        "else text; .tsv with a header; else one row a line). messages: conversation rows "
        "{messages: [{role, content}, ...]}, rendered with the target's chat template and "
        "trained on the assistant responses only.",
    )
    hub_dataset: str | None = Field(None, description="Hub dataset id, used when `path` is empty.")
    hub_config: str | None = None
    hub_split: str = "train"
    text_field: str = "text"
    max_rows: int | None = Field(None, ge=1)
    max_chars: int = Field(
        2000,
        ge=16,
        description="Text rows are pre-split to at most this many characters (conversations "
        "are never split).",
    )


class ExtractSection(_Section):
    backend: Literal["hf", "vllm"] = "hf"
    k: int = Field(10, ge=1)
    max_length: int = Field(2048, ge=2)
    batch_size: int = Field(8, ge=1)
    rows_per_shard: int = Field(1000, ge=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="auto: bfloat16 on CUDA (both backends, vllm included), float32 on CPU; "
        "the store records the dtype used.",
    )
    device: str | None = None
    tensor_parallel_size: int = Field(
        1,
        ge=1,
        description="vllm backend: GPUs one model is spread over. vLLM extraction runs in one "
        "process whatever --nproc says (ranks would each load the model on the same GPUs).",
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vllm backend: share of each GPU's memory vLLM may take."
    )


class AlignSection(_Section):
    vocab_mapping: Literal["exact", "mined", "statistics"] = Field(
        "statistics",
        description="exact: same text after the marker swap; mined: else nearest by edit "
        "distance; statistics: FuseChat's aligned-pair counts, mined where a token has none.",
    )
    gold_prefix: bool = Field(
        False,
        description="Move a source's mass on a target token that is a proper prefix of the "
        "gold next token (source '긍' where the target writes '긍정' as one token) onto the "
        "gold token; false (default): project as the references do.",
    )


class FuseSection(_Section):
    method: Literal["min_ce", "avg_ce", "avg_ce_sharp", "min_ce_aligned", "avg_ce_aligned"] = Field(
        "min_ce",
        description="min_ce: the distribution of the lowest-CE model per row; avg_ce: "
        "weights softmax(exp(-CE)); avg_ce_sharp: weights softmax(-CE / temperature); "
        "*_aligned: the same with each candidate's CE measured on the target's tokens "
        "(comparable across tokenizers) instead of each model's own per-token CE.",
    )
    temperature: float | None = Field(
        None, gt=0, description="Only for avg_ce_sharp (default 1.0 there)."
    )
    keep: int | None = Field(
        None,
        ge=1,
        description="Averages only: keep each position's `keep` most probable entries of the "
        "mixture (the dropped mass is reported); default: the whole union.",
    )
    include_target: bool = Field(
        True,
        description="true (FuseLLM's): the target's own distribution is a candidate beside "
        "the sources; false: only the sources teach, and the target's own distribution only "
        "fills positions where a source has no entry.",
    )
    tail: Literal["drop", "keep"] = Field(
        "drop",
        description="drop (FuseLLM's): each candidate's top-k is renormalised and training "
        "matches those k entries; keep: the fused store holds absolute probabilities and "
        "training also matches the rest of the vocabulary as one outcome (p_tail = 1 - sum "
        "p), so a teacher whose top-k holds little mass is not sharpened to k tokens.",
    )

    @model_validator(mode="after")
    def _options_are_used(self) -> FuseSection:
        if self.temperature is not None and self.method != "avg_ce_sharp":
            raise ValueError("temperature is only used by method avg_ce_sharp")
        if self.keep is not None and self.method.startswith("min_ce"):
            raise ValueError(f"keep is only used by the averaging methods, not {self.method}")
        return self


class EvaluateSection(_Section):
    """After training, ``fuse run`` trains a CLM-only control, evaluates base, control, fused
    (and sources), compares them and gates on the fused model's drop from the base."""

    tasks: list[str] = Field(
        default_factory=lambda: ["ko_fusellm", "ko_bpb"],
        min_length=1,
        description="Task or group names (see `fusebench tasks`). A name of this default that "
        "the installed task catalogue lacks is skipped with a note; a name written here must "
        "exist.",
    )
    num_fewshot: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [0, 5], min_length=1, description="Shot counts, each evaluated."
    )
    limit: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None,
        description="Documents per task (a fraction of them if < 1); default all. For quick "
        "checks: a comparison over few documents has wide intervals.",
    )
    batch_size: int | None = Field(
        None, ge=1, description="Evaluation batch size (default: `fusebench eval`'s)."
    )
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="hf (transformers, CPU or GPU) or vllm (GPU), as in `fusebench eval`."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Evaluation dtype."
    )
    device: str | None = Field(None, description="cpu, cuda, cuda:1 ... (default: cuda if any).")
    nproc: int = Field(
        1,
        ge=1,
        description="Processes per evaluation (hf backend), as `fusebench eval --nproc`: rank "
        "i on cuda:i (device cuda), or the CPU threads shared; the numbers equal one process's.",
    )
    seed: int | None = Field(
        None, description="Seed of every evaluation (default: `fusebench eval`'s)."
    )
    seeds: list[Annotated[int, Field(strict=True)]] | None = Field(
        None,
        description="Training seeds: the fused model and its control are trained and "
        "evaluated once per seed (the extraction and the fused store are shared), and fused - "
        "clm-only is pooled over them. Default: the one seed `train.seed`, where a one-seed "
        "run always trained.",
    )
    sources: bool = Field(
        True,
        description="Evaluate each source too (under its name), so the strengths leaderboard "
        "shows what each one brings.",
    )
    max_drop: float | None = Field(
        None,
        ge=0,
        description="Gate: exit 1 when a task's primary score of the fused model is below the "
        "base's by more than this (the metric's own units).",
    )
    max_drop_rel: float | None = Field(
        None,
        ge=0,
        description="Gate: exit 1 when it is below by more than this fraction of the base "
        "score (0.02 = 2%).",
    )
    allow_contamination: bool = Field(
        False,
        description="Go on when the contamination check before extraction finds scored "
        "documents of these tasks in the fusion corpus (the report still shows them). "
        "Default: stop before extraction.",
    )
    logickor_strategy: str = Field(
        "default",
        description="LogicKor prompt strategy base and fused answer with, when a judge is "
        "configured (FUSEBENCH_JUDGE_BASE_URL and FUSEBENCH_JUDGE_MODEL).",
    )
    logickor_max_tokens: int | None = Field(
        None, ge=1, description="LogicKor: tokens per answer at most (default: generate's)."
    )
    logickor_stop: list[str] | None = Field(
        None,
        description="LogicKor: stop sequences (default: generate's list of chat markers; on "
        "CPU each costs `transformers serve` a vocabulary scan per request).",
    )

    apply_chat_template: bool | str = Field(
        False,
        description="Format every prompt with the model's chat template: true (its default "
        "template) or a template's name, as `fusebench eval --apply-chat-template` and "
        "`--chat-template-name`.",
    )
    system_instruction: str | None = Field(
        None, description="System message before each prompt (`eval`'s option)."
    )
    fewshot_as_multiturn: bool | None = Field(
        None,
        description="Few-shot examples as earlier chat turns (default: on with a chat "
        "template, as lm-eval); needs apply_chat_template.",
    )

    @model_validator(mode="after")
    def _multiturn_needs_template(self) -> EvaluateSection:
        """lm-eval's rule, checked when the config is read rather than after training."""
        if self.fewshot_as_multiturn and not self.apply_chat_template:
            raise ValueError("fewshot_as_multiturn needs apply_chat_template (as in lm-eval)")
        if isinstance(self.apply_chat_template, str) and not self.apply_chat_template.strip():
            raise ValueError("apply_chat_template: a template name must not be empty")
        if self.system_instruction is not None and not self.system_instruction.strip():
            raise ValueError("system_instruction must not be empty")
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds_distinct(cls, seeds: list[int] | None) -> list[int] | None:
        """A repeated seed would train one model twice and count it twice in the pool."""
        if seeds is None:
            return None
        if not seeds:
            raise ValueError("name at least one seed (or leave seeds out: train.seed)")
        if any(s < 0 for s in seeds):
            raise ValueError(f"seeds must be non-negative integers, not {seeds}")
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"seeds must be distinct: {', '.join(map(str, repeated))} repeated")
        return seeds

    @model_validator(mode="after")
    def _nproc_backend(self) -> EvaluateSection:
        """vLLM spreads an evaluation itself; refused here, not after training."""
        if self.nproc > 1 and self.backend == "vllm":
            raise ValueError(
                "nproc > 1 applies to backend hf; vllm spreads the work itself (its tensor "
                "and data parallel settings)"
            )
        return self


class TrainRunConfig(_Section):
    """What the trainer reads: the model, where to write, the corpus and the train section.

    A FuseConfig is one; ``fusebench vocab train`` writes one per stage (no sources: it
    trains on the plain CLM objective, ``train.objective: clm``).
    """

    work_dir: Path = Field(description="Every stage writes under this directory.")
    target: ModelEntry
    corpus: CorpusSection | None = None
    train: TrainSection = TrainSection()
    source_file: Path | None = Field(None, exclude=True, description="Set by load_config.")


class FuseConfig(TrainRunConfig):
    sources: list[ModelEntry] = Field(min_length=1)
    corpus: CorpusSection
    extract: ExtractSection = ExtractSection()
    align: AlignSection = AlignSection()
    fuse: FuseSection = FuseSection()
    evaluate: EvaluateSection | None = Field(
        None,
        description="Optional: after training, a CLM-only control, evaluation, comparison "
        "(work_dir/report) and a regression gate. Without it `fuse run` stops after training.",
    )


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping; one line naming the file (and line) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}not valid YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    return raw


def validate_config(schema: type[ModelT], raw: dict[str, Any], path: Path) -> ModelT:
    """``schema`` validated from ``raw``; the first problem as one line naming the field."""
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: field {field}: {message}") from None


def load_config(path: Path, schema: type[TrainRunConfig] = FuseConfig) -> Any:
    """Read and validate a config; relative paths resolve against the file's folder."""
    path = Path(path)
    return _resolved(validate_config(schema, read_yaml_mapping(path), path), path)


def with_seeds(config: FuseConfig, seeds: str) -> FuseConfig:
    """``config`` with ``evaluate.seeds`` from a command line's ``0,1,2`` (validated as the
    config field is; one line naming the option when it is wrong)."""
    where = f"--seeds {seeds}"
    if config.evaluate is None:
        raise ConfigError(f"{where}: {config.source_file} has no evaluate section to seed")
    try:
        parsed = [int(part) for part in seeds.split(",")]
    except ValueError:
        raise ConfigError(f"{where}: expected comma-separated integers, e.g. 0,1,2") from None
    try:
        section = type(config.evaluate).model_validate(
            {**config.evaluate.model_dump(), "seeds": parsed}
        )
    except ValidationError as err:
        reason = err.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {reason}") from None
    return config.model_copy(update={"evaluate": section})


def load_train_config(path: Path) -> TrainRunConfig:
    """What a training rank reads: a FuseConfig when the file names sources, else a
    TrainRunConfig (one ``vocab train`` stage, written by the parent process)."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    schema = FuseConfig if "sources" in raw else TrainRunConfig
    return _resolved(validate_config(schema, raw, path), path)


def work_dir_at(base: Path, work_dir: Path, path: Path) -> Path:
    """``work_dir`` resolved against ``base``; refused (one line naming the config) when it,
    or the nearest folder above it that exists, is a file: every stage would fail on mkdir."""
    resolved = (base / work_dir).resolve()
    blocker = blocking_file(resolved)
    if blocker is not None:
        what = "" if blocker == resolved else f" ({blocker} is a file)"
        raise ConfigError(f"{path}: field work_dir: {resolved} is not a directory{what}")
    return resolved


def _resolved(config: Any, path: Path) -> Any:
    """``config`` with its relative paths resolved against the file's folder."""
    base = path.parent
    config.source_file = path.resolve()
    config.work_dir = work_dir_at(base, config.work_dir, path)
    for entry in [config.target, *getattr(config, "sources", [])]:
        local = base / entry.path
        if local.exists():
            entry.path = str(local.resolve())
    if config.corpus is not None and config.corpus.path:
        config.corpus.path = str((base / config.corpus.path).resolve())
    return config
