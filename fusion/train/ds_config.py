"""The DeepSpeed config dict, built from the ``train`` section (no hand-edited JSON)."""

from __future__ import annotations

from typing import Any

from fusion.train.config import TrainSection


def use_torch_adam(section: TrainSection, cuda: bool) -> bool:
    """torch's AdamW unless DeepSpeed's compiled Adam is asked for (or auto on CUDA).

    DeepSpeed's FusedAdam needs CUDA and DeepSpeedCPUAdam a compiled C++ op; torch's AdamW
    runs everywhere (this CPU machine included) at some speed cost on GPUs.
    """
    if section.optimizer == "auto":
        return not cuda
    return section.optimizer == "torch"


def deepspeed_config(section: TrainSection, *, total_steps: int, cuda: bool) -> dict[str, Any]:
    """ZeRO stage, offload, precision, accumulation, clipping and AdamW, as DeepSpeed reads them.

    The schedule is not here: the trainer passes transformers' cosine-with-warm-up (FuseLLM
    trained with the HF Trainer, whose schedule this is) to ``deepspeed.initialize``.
    """
    zero: dict[str, Any] = {"stage": section.zero_stage}
    if section.offload and section.zero_stage > 0:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": cuda}
    if section.zero_stage == 3:
        # The final model is gathered from the shards (engine's consolidated 16-bit state dict).
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    torch_adam = use_torch_adam(section, cuda)
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": section.micro_batch_size,
        "gradient_accumulation_steps": section.gradient_accumulation_steps,
        "gradient_clipping": section.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": section.precision == "bf16"},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": section.learning_rate,
                "betas": list(section.adam_betas),
                "eps": 1e-8,
                "weight_decay": section.weight_decay,
                "torch_adam": torch_adam,
            },
        },
        "steps_per_print": max(total_steps, 1) * 10,  # fusebench logs; DeepSpeed stays quiet
        "wall_clock_breakdown": False,
    }
    if torch_adam:
        # torch's AdamW under ZeRO and with offload: DeepSpeed asks for these acknowledgements.
        config["zero_allow_untested_optimizer"] = True
        config["zero_force_ds_cpu_optimizer"] = False
    return config
