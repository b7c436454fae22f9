"""The FuseChat pipeline: pairwise fusion of each source into a pivot, then one merge.

Stage 1 fuses every source into the pivot with the fusion core (extract -> align -> train),
one pair at a time, into ``work_dir/pairs/<source>/``. Extraction is shared: the corpus and
every model's top-k store are made once under ``work_dir/corpus`` and ``work_dir/stores``
(the pivot extracted once, not once per pair), and each pair's folder links to the two
stores it uses, so the fusion core reads a normal work_dir whose fingerprints it checks as
usual. Stage 2 merges the pair targets (``pairs/<source>/train/final``) relative to the
pivot with fusion/merge (VaRM by default, as FuseChat) into ``work_dir/merged``.
``harness/cli/fuse_chat_cmd.py`` runs the stages; this module holds the config and the
derivations.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fusion.config import (
    AlignSection,
    ConfigError,
    CorpusSection,
    EvaluateSection,
    ExtractSection,
    FuseConfig,
    FuseSection,
    ModelEntry,
    load_config,
    read_yaml_mapping,
    validate_config,
    work_dir_at,
)
from fusion.layout import WorkDir
from fusion.merge.methods import method as merge_method
from fusion.merge.output import MERGE_RECORD
from fusion.merge.spec import Granularity, InputModel, MergeSpec, Method, ParameterValue
from fusion.train.config import TrainSection

# train fields that name one run's folders: the pipeline sets them per pair.
PER_PAIR = ("output", "fused_store", "objective", "trainable", "new_rows_from")


class ChatMerge(BaseModel):
    """Stage 2: fusion/merge's method and parameters (MergeSpec without models and output)."""

    model_config = ConfigDict(extra="forbid")

    method: Method = "varm"
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)
    model_parameters: dict[str, dict[str, ParameterValue]] = Field(
        default_factory=dict, description="Per-source method parameters, keyed by source name."
    )
    granularity: Granularity = "matrix"
    dtype: str | None = None
    seed: int = 0
    device: str = "cpu"


# fuse run's evaluate fields that fuse chat has no use for, and why (refused, one line).
NOT_FOR_CHAT = {
    "seeds": "fuse chat trains each pair once (no training seeds or CLM-only control)",
    "sources": "fuse chat evaluates the pivot, the pair targets (evaluate.pairs) and the merge",
    "allow_contamination": "fuse chat runs no contamination check",
    "logickor_strategy": "fuse chat does not answer or judge LogicKor",
    "logickor_max_tokens": "fuse chat does not answer or judge LogicKor",
    "logickor_stop": "fuse chat does not answer or judge LogicKor",
}


class ChatEvaluate(EvaluateSection):
    """``fuse chat``'s evaluate section: fuse run's fields that apply (tasks, shots, limit,
    backend, batch size, dtype, device, seed, the gate, the chat settings), with the chat
    template on by default: FuseChat's pivot, pair targets and merge are chat models, so they
    are evaluated as they are used (``apply_chat_template: false`` turns it off)."""

    apply_chat_template: bool | str = Field(
        True,
        description="Format every prompt with the model's chat template: true (default: its "
        "default template), false, or a template's name.",
    )
    pairs: bool = Field(
        True,
        description="Evaluate each pair target too (as pair-<source>), beside the pivot "
        "(base) and the merge (merged).",
    )

    @field_validator(*NOT_FOR_CHAT, mode="before")
    @classmethod
    def _not_for_chat(cls, value: object, info: ValidationInfo) -> object:
        """Set at all (even to the default): one line naming the field and why."""
        raise ValueError(f"not a fuse chat setting: {NOT_FOR_CHAT[info.field_name or '']}")


class ChatConfig(BaseModel):
    """What ``fusebench fuse chat`` reads (configs/tiny-fusechat.yaml is an example)."""

    model_config = ConfigDict(extra="forbid")

    work_dir: Path
    pivot: ModelEntry
    sources: list[ModelEntry] = Field(min_length=1)
    corpus: CorpusSection
    extract: ExtractSection = ExtractSection()
    align: AlignSection = AlignSection()
    fuse: FuseSection = FuseSection()
    train: TrainSection = TrainSection()
    merge: ChatMerge = ChatMerge()
    evaluate: ChatEvaluate | None = Field(
        None,
        description="Optional: after the merge, evaluate the pivot, the pair targets and the "
        "merged model (chat template on by default), compare merged with the pivot under "
        "work_dir/report and gate. Without it `fuse chat` stops after the merge.",
    )
    source_file: Path | None = Field(None, exclude=True, description="Set by load_chat_config.")

    @model_validator(mode="after")
    def _check(self) -> ChatConfig:
        names = [s.name for s in self.sources]
        for source in self.sources:
            if source.name == self.pivot.name or source.path == self.pivot.path:
                raise ValueError(f"source {source.name!r} is the pivot itself")
        if len(set(names)) != len(names):
            raise ValueError(f"source names must differ (they name the pairs): {names}")
        unknown = set(self.merge.model_parameters) - set(names)
        if unknown:
            raise ValueError(f"merge.model_parameters: {sorted(unknown)[0]!r} is not a source")
        # the merge's parameters now, not after every pair has trained
        per_source = [
            (name, f"merge.model_parameters.{name}", self.merge.model_parameters.get(name, {}))
            for name in names
        ]
        merge_method(self.merge.method).check_parameters(
            self.merge.parameters, per_source, shared_key="merge.parameters"
        )
        for key in PER_PAIR:
            if key in self.train.model_fields_set:
                raise ValueError(f"train.{key} is set per pair by the pipeline, not here")
        return self


def load_chat_config(path: Path) -> ChatConfig:
    """Read and validate CONFIG (one line naming the field on error); paths resolve against
    its folder, and the pivot and sources must be local model directories or Hub ids."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    base = path.parent
    for key in ("pivot", "sources"):  # resolve before validating: the pivot check compares
        entries = raw.get(key)
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                entry["path"] = _local(base, entry["path"], path, key)
    config = validate_config(ChatConfig, raw, path)
    config.work_dir = work_dir_at(base, config.work_dir, path)
    config.source_file = path.resolve()
    if config.corpus.path:
        config.corpus.path = str((base / config.corpus.path).resolve())
    return config


def _local(base: Path, reference: str, file: Path, field: str) -> str:
    """A local path resolved against the config's folder; a Hub id (org/name) kept as is."""
    local = base / reference
    if local.exists():
        return str(local.resolve())
    if reference.startswith((".", "/", "~")) or reference.count("/") != 1:
        raise ConfigError(f"{file}: field {field}: {reference}: no such model directory")
    return reference


def _fuse_config(chat: ChatConfig, work_dir: Path, sources: list[ModelEntry]) -> FuseConfig:
    return FuseConfig(
        work_dir=work_dir,
        target=chat.pivot,
        sources=sources,
        corpus=chat.corpus,
        extract=chat.extract,
        align=chat.align,
        fuse=chat.fuse,
        train=chat.train,
    )


def _written(config: FuseConfig, file: Path) -> FuseConfig:
    """Write a derived config (kept, for inspection and for torchrun workers) and load it."""
    file.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False)
    file.write_text(text, encoding="utf-8")
    return load_config(file)


def extraction_config(chat: ChatConfig) -> FuseConfig:
    """Pivot and every source over the shared corpus: ``work_dir/{corpus,stores}``."""
    config = _fuse_config(chat, chat.work_dir, list(chat.sources))
    return _written(config, WorkDir(chat.work_dir).configs / "extract.yaml")


def pair_dir(chat: ChatConfig, source: ModelEntry) -> Path:
    return WorkDir(chat.work_dir).pair(source.name).root


def pair_config(chat: ChatConfig, source: ModelEntry) -> FuseConfig:
    """The pair's fusion core config: target = pivot, sources = [source]."""
    config = _fuse_config(chat, pair_dir(chat, source), [source])
    return _written(config, pair_dir(chat, source) / "config.yaml")


def link_shared(chat: ChatConfig, source: ModelEntry) -> None:
    """Point the pair's corpus and its two stores at the shared ones (relative links)."""
    shared, pair = WorkDir(chat.work_dir), WorkDir(chat.work_dir).pair(source.name)
    links = {pair.corpus: shared.corpus}
    for entry in (chat.pivot, source):
        links[pair.store(entry.name)] = shared.store(entry.name)
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.resolve() == target.resolve():
                continue
            raise ConfigError(f"{link}: exists and is not a link to {target}; use a new work_dir")
        link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


def merged_dir(chat: ChatConfig) -> Path:
    return WorkDir(chat.work_dir).merged


def merge_spec(chat: ChatConfig, finals: dict[str, Path]) -> MergeSpec:
    """Stage 2's merge: the pair targets relative to the pivot, for methods that need a base
    (linear takes none: with one, mergekit would average the pivot in as a third model)."""
    section = chat.merge
    base = chat.pivot.path if merge_method(section.method).needs_base else None
    models = [
        InputModel(model=str(finals[s.name]), parameters=section.model_parameters.get(s.name, {}))
        for s in chat.sources
    ]
    return MergeSpec(
        method=section.method,
        models=models,
        base_model=base,
        parameters=section.parameters,
        granularity=section.granularity,
        dtype=section.dtype,
        output=merged_dir(chat),
        seed=section.seed,
        device=section.device,
        trust_remote_code=chat.pivot.trust_remote_code,
    )


def merge_done(chat: ChatConfig, spec: MergeSpec) -> bool:
    """A finished merge with these inputs and settings (the spec is saved beside it)."""
    saved = merged_dir(chat) / MERGE_RECORD
    if not saved.is_file():
        return False
    return yaml.safe_load(saved.read_text(encoding="utf-8")) == spec.model_dump(mode="json")
