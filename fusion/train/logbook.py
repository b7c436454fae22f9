"""Per-step training records: ``log.jsonl`` (always) and TensorBoard (when installed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runrecords.atomic import write_text_atomic


class Logbook:
    """Appends one JSON line per logged step; only rank 0 makes one."""

    def __init__(self, path: Path, *, tensorboard: bool) -> None:
        self.path = path
        self.writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                pass
            else:
                self.writer = SummaryWriter(log_dir=str(path.parent / "tensorboard"))

    def keep_until(self, step: int) -> None:
        """On resume, drop records past the checkpoint (a crash may have logged them)."""
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").split("\n")
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        text = "".join(line + "\n" for line in kept)
        write_text_atomic(self.path, text)

    def start_fresh(self) -> None:
        self.path.unlink(missing_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")  # ASCII: U+2028 escaped
        if self.writer is not None:
            for key in ("loss", "clm", "fuse", "lr", "grad_norm"):
                if record.get(key) is not None:
                    self.writer.add_scalar(f"train/{key}", record[key], record["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8").split("\n")  # not splitlines: see runrecords.jsonl
    return [json.loads(line) for line in text if line.strip()]
