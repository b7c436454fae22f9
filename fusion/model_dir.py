"""A local model directory checked before its weights are loaded: one line naming the file.

Why: a truncated ``model.safetensors`` (a copy cut short, a full disk) or a ``config.json``
edited out of step with the weights (``vocab_size`` after a resize) otherwise surfaces as a
60-line traceback from deep inside transformers or safetensors: "incomplete metadata" with no
path, or "look at the above report!" with no report. The safetensors headers and config.json
are enough to tell, without reading any weight: milliseconds, before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fusion.errors import FusionError

# Input embeddings (their rows are the vocabulary) and output layers, by their names' ends.
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")
OUTPUT_SUFFIXES = ("lm_head.weight", "embed_out.weight")


class ModelDirError(FusionError):
    """A model directory whose files are broken or disagree with each other."""


def first_line(err: BaseException) -> str:
    """An exception's first line (or its type's name): a library's message in one line."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def safetensors_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor name -> shape over the folder's ``*.safetensors`` files, from their headers;
    a file that is cut short or not safetensors is an error naming it."""
    from safetensors import safe_open

    shapes: dict[str, list[int]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="np") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    shapes[name] = list(handle.get_slice(name).get_shape())
        except Exception as err:  # SafetensorError, or OSError for an unreadable file
            reason = first_line(err).removeprefix("Error while deserializing header: ")
            raise ModelDirError(
                f"{file}: truncated or not a safetensors file ({reason}); copy or save the "
                "model again"
            ) from None
    return shapes


def cannot_load(model: str, err: BaseException) -> ModelDirError:
    """A loader's error for ``model`` as one line: for a model the checks above let through
    (a size other than vocab_size changed in config.json, a .bin checkpoint), or memory."""
    text = first_line(err)
    if "ignore_mismatched_sizes" in text:  # transformers' report of the keys went to its log
        text = "the shapes of its weights do not match its config.json"
    else:
        text = f"{type(err).__name__}: {text}"
    return ModelDirError(f"{model}: cannot load the model ({text})")


# What loaders raise for a model's files (safetensors' own error is added where it is imported).
LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError)


def _text_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ModelDirError(f"{path}: not readable JSON ({first_line(err)})") from None
    if not isinstance(config, dict):
        raise ModelDirError(f"{path}: not a model config (a JSON object)")
    text = config.get("text_config")
    return text if isinstance(text, dict) and "vocab_size" in text else config


def _rows(shapes: dict[str, list[int]], suffixes: tuple[str, ...]) -> tuple[str, int] | None:
    for name, shape in sorted(shapes.items()):
        if name.endswith(suffixes) and len(shape) == 2:
            return name, int(shape[0])
    return None


def check_model_dir(folder: Path) -> None:
    """Refuse a local model directory whose safetensors files are broken, or whose
    config.json ``vocab_size`` disagrees with the rows of its embedding or output layer.
    Anything else (a Hub id, a folder without safetensors) is left to the loader."""
    folder = Path(folder)
    if not folder.is_dir() or not (folder / "config.json").is_file():
        return
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            raise ModelDirError(f"{index}: not a safetensors index (weight_map)") from None
        missing = sorted(name for name in files if not (folder / name).is_file())
        if missing:
            raise ModelDirError(f"{index}: names {', '.join(missing)}, which is not in {folder}")
    shapes = safetensors_shapes(folder)
    vocab = _text_config(folder / "config.json").get("vocab_size")
    if not shapes or not isinstance(vocab, int):
        return
    for suffixes, what in ((EMBEDDING_SUFFIXES, "embedding"), (OUTPUT_SUFFIXES, "output layer")):
        found = _rows(shapes, suffixes)
        if found is not None and found[1] != vocab:
            raise ModelDirError(
                f"{folder / 'config.json'}: vocab_size {vocab} does not match the weights' "
                f"{what} rows {found[1]} ({found[0]}); fix the config or save the model again"
            )
