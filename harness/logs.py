"""Quiet, useful logging: library chatter off unless --verbose, progress bars kept."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

# lm-eval warns once per task that custom_dataset kwargs can be passed via --metadata:
# true but irrelevant to fusebench users, who never call lm-eval's CLI.
# "Overwriting default num_fewshot" restates the --num-fewshot the user just gave.
_NOISE = (
    "Custom kwargs can be passed",
    "For example --metadata",
    "Overwriting default num_fewshot",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in _NOISE)


def configure(verbose: bool = False) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in ("lm_eval", "lm-eval", "datasets", "transformers", "deepspeed", "httpx"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addFilter(_DropNoise())
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropNoise())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="transformers")
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.set_verbosity_error()


def hide_progress_bars() -> None:
    """``--quiet``: the libraries' progress bars off too (transformers' weight loading and
    saving, the Hub's downloads), in this process and in the ranks it starts."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read by huggingface_hub and transformers
    os.environ["TQDM_DISABLE"] = "1"  # tqdm reads it at import: the ranks this process starts
    _disable_tqdm_here()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def _disable_tqdm_here() -> None:
    """Every tqdm bar in this process off (lm-eval's request loops, datasets' maps), even
    where the caller passes ``disable=False`` explicitly, as lm-eval does on rank 0. tqdm
    has no global switch once imported, so its constructor is wrapped (by hand: no library
    does this)."""
    from tqdm import std

    init = std.tqdm.__init__
    if getattr(init, "_fusebench_quiet", False):
        return

    def quiet_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    quiet_init._fusebench_quiet = True  # type: ignore[attr-defined]
    std.tqdm.__init__ = quiet_init  # type: ignore[method-assign]
