"""Several training seeds of one fusion run (``evaluate.seeds``): which seeds, and each seed's
fused and CLM-only training configs.

The extraction, alignment and fused store do not depend on the training seed, so they are
shared; the fused training and its control are run once per seed. Where: a seed equal to
``train.seed`` trains where a one-seed run always trained (``train/`` or ``train.output``, and
``control/``), so a finished one-seed work_dir stays valid and adding seeds to it reuses that
training; every other seed ``s`` trains into ``train-seed-<s>/`` and ``control-seed-<s>/``
(``fusion/layout.py``).
"""

from __future__ import annotations

from typing import Any

from fusion.layout import WorkDir


def training_seeds(config: Any) -> list[int]:
    """``evaluate.seeds`` in the order given, else the one seed ``train.seed``."""
    section = getattr(config, "evaluate", None)
    if section is not None and section.seeds:
        return list(section.seeds)
    return [config.train.seed]


def is_home_seed(config: Any, seed: int) -> bool:
    """The seed a one-seed run trains: its outputs stay where they always were."""
    return seed == config.train.seed


def seeded(config: Any, seed: int) -> Any:
    """The fused training at ``seed``: ``config`` itself for ``train.seed``, else the same
    training with that seed, into ``work_dir/train-seed-<seed>``."""
    if is_home_seed(config, seed):
        return config
    train = config.train.model_copy(
        update={"seed": seed, "output": str(WorkDir(config.work_dir).seed_train(seed))}
    )
    return config.model_copy(update={"train": train})


def seeded_control(config: Any, seed: int) -> Any:
    """The CLM-only control at ``seed`` (``fusion/control.py``): ``work_dir/control`` for
    ``train.seed``, else ``work_dir/control-seed-<seed>``."""
    from fusion.control import control_config

    layout = WorkDir(config.work_dir)
    output = layout.control if is_home_seed(config, seed) else layout.seed_control(seed)
    return control_config(seeded(config, seed), output=output)
