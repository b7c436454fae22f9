"""The CLM-only control of a fusion run: the same training without the fusion term.

The same target, the same fused store (its rows, in the same order), steps, schedule, seed
and process count as the fused training, with ``lambda_clm = 1`` (the trainer then leaves the
fusion term out entirely). What the fused model gains over this control is the fusion term's
doing, not the extra training's. It trains into ``work_dir/control`` (``WorkDir.control``).
"""

from __future__ import annotations

from pathlib import Path

from fusion.config import FuseConfig
from fusion.layout import WorkDir

CONTROL_LAMBDA_CLM = 1.0


def control_config(config: FuseConfig, output: Path | None = None) -> FuseConfig:
    """``config`` with the control's train section: lambda_clm = 1, output work_dir/control
    (or ``output``: another seed's control, ``fusion/seeds.py``)."""
    output = output or WorkDir(config.work_dir).control
    train = config.train.model_copy(
        update={"lambda_clm": CONTROL_LAMBDA_CLM, "output": str(output)}
    )
    return config.model_copy(update={"train": train})
