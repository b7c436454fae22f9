"""``fusebench vocab train CONFIG``: EEVE's staged training of an expanded model.

Each stage trains some parameter groups (fusion/train/freeze.py) on the plain CLM objective
with the fusion core's DeepSpeed trainer, from the previous stage's final model, into
``work_dir/stages/<n>/`` (checkpoints, log.jsonl, final/). A finished stage is skipped on a
rerun and an interrupted one resumes from its checkpoint. The corpus is prepared once, in
``work_dir/corpus`` (fusion/corpus.py), and every stage reads it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusion.config import (
    ConfigError,
    CorpusSection,
    ModelEntry,
    TrainRunConfig,
    read_yaml_mapping,
    validate_config,
    work_dir_at,
)
from fusion.layout import WorkDir
from fusion.train.config import GROUPS, TrainSection

# Set per stage: a value in the shared train section would be overwritten, so it is refused.
PER_STAGE = (
    "learning_rate",
    "max_steps",
    "trainable",
    "objective",
    "output",
    "fused_store",
    "new_rows_from",
    "epochs",
)


class Stage(BaseModel):
    """One stage: what it trains, for how long, how fast."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A label for logs (e.g. new_input_embeddings).")
    trainable: list[str] = Field(min_length=1, description=f"Groups from {', '.join(GROUPS)}.")
    learning_rate: float = Field(gt=0)
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps (or `tokens`).")
    tokens: int | None = Field(None, ge=1, description="Token budget, made into steps.")

    @model_validator(mode="after")
    def _check(self) -> Stage:
        for group in self.trainable:
            if group not in GROUPS:
                raise ValueError(
                    f"stage {self.name!r}: unknown group {group!r} (known: {', '.join(GROUPS)})"
                )
        if (self.max_steps is None) == (self.tokens is None):
            raise ValueError(f"stage {self.name!r}: give exactly one of max_steps and tokens")
        return self


class VocabTrainConfig(BaseModel):
    """What ``fusebench vocab train`` reads (configs/tiny-vocab-train.yaml is an example)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The expanded model directory (from `vocab expand`).")
    work_dir: Path = Field(description="corpus/ and stages/<n>/ are written here.")
    corpus: CorpusSection
    train: TrainSection = Field(
        TrainSection(weight_decay=0.0),
        description="Settings shared by every stage (ZeRO stage, precision, batch, length).",
    )
    stages: list[Stage] = Field(min_length=1)
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _shared_only(self) -> VocabTrainConfig:
        for key in PER_STAGE:
            if key in self.train.model_fields_set:
                raise ValueError(f"train.{key} is set per stage (or by vocab train), not here")
        return self


def load_vocab_config(path: Path) -> VocabTrainConfig:
    """Read and validate CONFIG; relative paths resolve against its folder."""
    path = Path(path)
    config = validate_config(VocabTrainConfig, read_yaml_mapping(path), path)
    base = path.parent
    config.work_dir = work_dir_at(base, config.work_dir, path)
    if (base / config.model).exists():
        config.model = str((base / config.model).resolve())
    if not (Path(config.model) / "config.json").is_file():
        raise ConfigError(f"{path}: field model: {config.model} is not a model directory")
    if config.corpus.path:
        config.corpus.path = str((base / config.corpus.path).resolve())
    return config


def stage_dir(config: VocabTrainConfig, number: int) -> Path:
    return WorkDir(config.work_dir).stage(number)


def stage_config(config: VocabTrainConfig, number: int, steps: int, epochs: int) -> TrainRunConfig:
    """Stage ``number`` (1-based) as the trainer reads it: from the previous stage's model."""
    stage = config.stages[number - 1]
    start = config.model if number == 1 else str(stage_dir(config, number - 1) / "final")
    train = config.train.model_copy(
        update={
            "learning_rate": stage.learning_rate,
            "max_steps": steps,
            "epochs": epochs,
            "trainable": stage.trainable,
            "objective": "clm",
            "output": f"stages/{number}",
            "new_rows_from": config.model,
        }
    )
    target = ModelEntry(
        name=f"stage-{number}", path=start, trust_remote_code=config.trust_remote_code
    )
    return TrainRunConfig(
        work_dir=config.work_dir,
        target=target,
        corpus=config.corpus,
        train=TrainSection.model_validate(train.model_dump()),
    )


def plan_steps(stage: Stage, dataset: Any, section: TrainSection, nproc: int) -> tuple[int, int]:
    """(optimizer steps, epochs) for a stage: its max_steps, or its token budget divided by
    the corpus's mean tokens per optimizer step; enough epochs to hold them."""
    per_rank = math.ceil(len(dataset) / nproc)
    per_epoch = (
        math.ceil(per_rank / section.micro_batch_size) // section.gradient_accumulation_steps
    )
    if per_epoch == 0:
        raise ConfigError(
            f"stage {stage.name!r}: {len(dataset)} corpus rows make less than one "
            f"optimizer step on {nproc} process(es)"
        )
    if stage.max_steps is not None:
        steps = stage.max_steps
    else:
        tokens_per_step = dataset.positions / per_epoch
        steps = max(1, math.ceil((stage.tokens or 0) / tokens_per_step))
    return steps, math.ceil(steps / per_epoch)
