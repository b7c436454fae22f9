"""What a training run reads and where it writes, checked before any process is started."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion.config import TrainRunConfig
from fusion.errors import FusionError
from fusion.launch import SINGLE_RANK_MARK
from fusion.layout import WorkDir
from fusion.store import tokenizer_fingerprint
from fusion.train.data import FusedDataset, open_fused_store


class TrainSetupError(FusionError):
    """The model or the output directory cannot be used as configured."""


@dataclass
class RunPaths:
    store: Path
    output: Path

    @property
    def checkpoints(self) -> Path:
        return self.output / "checkpoints"

    @property
    def final(self) -> Path:
        return self.output / "final"

    @property
    def log(self) -> Path:
        return self.output / "log.jsonl"

    @property
    def status(self) -> Path:
        return self.output / "status.json"


def run_paths(config: TrainRunConfig) -> RunPaths:
    """work_dir/fused and work_dir/train unless the train section names others."""
    section, layout = config.train, WorkDir(config.work_dir)
    store = config.work_dir / section.fused_store if section.fused_store else layout.fused
    output = config.work_dir / section.output if section.output else layout.train
    return RunPaths(store=store, output=output)


def load_tokenizer(config: TrainRunConfig) -> Any:
    from transformers import AutoTokenizer

    target = config.target
    try:
        return AutoTokenizer.from_pretrained(
            target.path, revision=target.revision, trust_remote_code=target.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise TrainSetupError(
            f"target.path {target.path}: cannot load a tokenizer ({err})"
        ) from None


def model_vocab_size(config: TrainRunConfig) -> int:
    from transformers import AutoConfig

    target = config.target
    try:
        model_config = AutoConfig.from_pretrained(
            target.path, revision=target.revision, trust_remote_code=target.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise TrainSetupError(f"target.path {target.path}: not a model ({err})") from None
    return int(model_config.vocab_size)


def open_data(config: TrainRunConfig, tokenizer: Any) -> tuple[Path, Any]:
    """Where the data is and its dataset: the fused store (kind, tokenizer, vocabulary
    checked), or the prepared corpus for ``objective: clm``."""
    section = config.train
    if section.objective == "clm":
        from fusion.train.clm_data import ClmDataset

        dataset = ClmDataset(config.work_dir, tokenizer, section.max_length, section.long_rows)
        return dataset.path, dataset
    paths = run_paths(config)
    store = open_fused_store(
        paths.store,
        fingerprint=tokenizer_fingerprint(tokenizer),
        model=config.target.path,
        vocab_size=model_vocab_size(config),
    )
    return store.path, FusedDataset(store, section.max_length, section.long_rows)


def new_row_ids(config: TrainRunConfig) -> list[int] | None:
    """The added tokens' row ids when a new_* group is trained (vocab_expansion.json)."""
    groups = config.train.trainable or []
    if not any(g.startswith("new_") for g in groups):
        return None
    from fusion.vocab.rows import new_rows

    return new_rows(Path(config.train.new_rows_from or config.target.path)).ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def single_rank_env() -> None:
    """Make this process a one-rank group when no launcher set one up."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    os.environ.update(
        {
            "RANK": "0",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "1",
            "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
            SINGLE_RANK_MARK: "1",
        }
    )
