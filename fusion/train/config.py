"""The ``train`` section of a fusion config (FuseLLM's defaults written out)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

# Parameter groups a stage may train (EEVE's schedule); see fusion/train/freeze.py.
Group = Literal[
    "new_input_embeddings",
    "new_output_embeddings",
    "all_input_embeddings",
    "all_output_embeddings",
    "transformer_layers",
    "all",
]
GROUPS: tuple[str, ...] = get_args(Group)


class TrainSection(BaseModel):
    """L = lambda * CLM + (1 - lambda) * L_fuse against the fused-targets store."""

    model_config = ConfigDict(extra="forbid")

    lambda_clm: float = Field(0.9, ge=0, le=1, description="Weight of the CLM loss.")
    fuse_loss: Literal["ce", "kl"] = Field(
        "ce", description="Cross-entropy or KL to the fused targets."
    )
    learning_rate: float = Field(1e-5, gt=0)
    warmup_ratio: float = Field(0.008, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: int = Field(1, ge=1)
    micro_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(2048, ge=2)
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload: bool = Field(False, description="ZeRO CPU offload of optimizer states.")
    precision: Literal["bf16", "fp32"] = "bf16"
    save_every: int = Field(100, ge=1, description="Checkpoint every N optimizer steps.")
    log_every: int = Field(1, ge=1)
    seed: int = 42
    # Where things are (a FuseConfig run uses work_dir/fused and work_dir/train).
    fused_store: str | None = Field(
        None, description="Fused-targets store; default work_dir/fused (relative: to work_dir)."
    )
    output: str | None = Field(
        None, description="Training output; default work_dir/train (relative: to work_dir)."
    )
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (and plan the schedule so)."
    )
    long_rows: Literal["truncate", "refuse"] = Field(
        "truncate", description="Rows longer than max_length: cut (and count) or stop."
    )
    gradient_checkpointing: bool = False
    optimizer: Literal["auto", "torch", "deepspeed"] = Field(
        "auto",
        description="AdamW implementation: torch's (runs anywhere), DeepSpeed's compiled ops "
        "(FusedAdam on GPU, DeepSpeedCPUAdam with offload), or auto (DeepSpeed's on CUDA).",
    )
    keep_checkpoints: int = Field(2, ge=1, description="Most recent checkpoints kept.")
    tensorboard: bool = Field(True, description="Also log to TensorBoard when it is installed.")
    objective: Literal["fused", "clm"] = Field(
        "fused",
        description="fused: lambda * CLM + (1 - lambda) * L_fuse on the fused store; clm: plain "
        "causal LM on the prepared corpus (work_dir/corpus), no store (vocab train's stages).",
    )
    trainable: list[Group] | None = Field(
        None,
        description="Parameter groups to train (default: all). new_* rows are the added tokens "
        "of new_rows_from; the other rows of that matrix stay bit-identical.",
    )
    new_rows_from: str | None = Field(
        None, description="Model dir with vocab_expansion.json (default: the target's)."
    )
