"""The ``train`` section of a fusion config (FuseLLM's defaults written out)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
