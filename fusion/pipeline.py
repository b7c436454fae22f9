"""The fusion stage sequences, in one place: FuseLLM's extract -> align/fuse -> train (and
its CLM-only control), FuseChat's pairwise fusion then merge, and EEVE's staged training.

Each function skips what is finished (every stage checks its own outputs), so calling it
again continues an interrupted run. Progress goes through a ``Reporter``: ``status`` lines
say what is happening (the CLI prints them on stderr), ``output`` names a result (the CLI
prints ``label: path`` on stdout, where scripts read it). Nothing here prints, and a Ctrl-C
or SIGTERM between units of work becomes ``Interrupted`` (exit code 130: finished work
is on disk, a rerun continues).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion.errors import FusionError
from fusion.layout import WorkDir
from runrecords.errors import Interrupted


def _quiet(*_: Any) -> None:
    return None


@dataclass
class Reporter:
    """Where a pipeline reports: status lines and named results."""

    status: Callable[[str], None] = field(default=_quiet)
    output: Callable[[str, Path], None] = field(default=_quiet)


def _interrupted(stage: str) -> Interrupted:
    return Interrupted(f"{stage} interrupted: finished shards are kept; rerun to continue")


# ------------------------------------------------------------------ FuseLLM stages


def extract(
    config: Any, *, nproc: int = 1, progress: bool = True, report: Reporter | None = None
) -> list[Path]:
    """Prepare the corpus and check every row fits every model here, then extract top-k (in
    this process, or on ``nproc`` ranks that split the shards; the vllm backend in one child
    process, whatever ``nproc``: vLLM spreads a model over ``extract.tensor_parallel_size``
    GPUs itself, and its GPU memory is free again once that process exits)."""
    from fusion.corpus import prepare
    from fusion.extract import check_models, check_rows, models, store_dir
    from fusion.extract import extract as extract_here
    from fusion.launch import run_alone, run_ranks

    report = report or Reporter()
    check_models(config)
    corpus = prepare(config.corpus, config.work_dir, chat_model=config.target)
    kind = (
        f"conversations rendered with {config.target.name}'s chat template, "
        if corpus.conversation
        else ""
    )
    report.status(
        f"corpus: {len(corpus)} rows, {kind}fingerprint {corpus.fingerprint[:12]} "
        f"({corpus.directory})"
    )
    check_rows(config, corpus)
    vllm = config.extract.backend == "vllm"
    if vllm and nproc > 1:
        # Each rank would load the model on the same GPUs; vLLM spreads one model itself.
        report.status(
            f"extract.backend vllm: extraction runs in one process (not {nproc}); "
            f"extract.tensor_parallel_size {config.extract.tensor_parallel_size} sets its "
            "GPUs, --nproc applies to training"
        )
        nproc = 1
    alone = vllm and config.source_file is not None
    try:
        if nproc == 1 and not alone:
            paths = extract_here(config, progress=progress, say=report.status)
        else:
            # vllm: one child process, whose exit gives vLLM's GPU memory back for training.
            args = [str(config.source_file), *([] if progress else ["--no-progress"])]
            launched = (
                run_alone("fusion.extract", args)
                if alone
                else run_ranks("fusion.extract", args, nproc=nproc)
            )
            if launched.interrupted:
                raise KeyboardInterrupt
            if launched.code != 0:
                raise FusionError(
                    f"extraction failed in a worker (exit code {launched.code}); "
                    "its message is above"
                )
            paths = [store_dir(config, entry) for entry in models(config)]
    except KeyboardInterrupt:
        raise _interrupted("extraction") from None
    for path in paths:
        report.output("store", path)
    return paths


def align(
    config: Any, *, overwrite: bool = False, progress: bool = True, report: Reporter | None = None
) -> Path:
    """Align every source to the target, map vocabularies, project and fuse into one store;
    then the strength check (fusion/strength.py: bits per byte per model and corpus group, rows
    won per group), so that it is on screen before any training starts."""
    from fusion.align.stage import run_align
    from fusion.strength import check_strength

    report = report or Reporter()
    try:
        out = run_align(config, progress=progress, overwrite=overwrite, say=report.status)
        strength = check_strength(config, say=report.status)
    except KeyboardInterrupt:
        raise _interrupted("alignment") from None
    report.output("fused store", out)
    report.output("report", WorkDir(config.work_dir).align_report)
    report.output("strength check", strength)
    return out


def train(
    config: Any,
    *,
    nproc: int = 1,
    resume: bool = True,
    progress: bool = True,
    report: Reporter | None = None,
) -> Path:
    """Train the target on the fused store (DeepSpeed, here or on ``nproc`` ranks)."""
    from fusion.train.launch import run_training

    report = report or Reporter()
    try:
        return run_training(
            config, nproc=nproc, resume=resume, progress=progress, say=report.status
        )
    except KeyboardInterrupt:
        raise _interrupted("training") from None


def fuse(
    config: Any,
    *,
    nproc: int = 1,
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
    report: Reporter | None = None,
) -> Path:
    """FuseLLM end to end: extract -> align and fuse -> train; returns the final model."""
    report = report or Reporter()
    extract(config, nproc=nproc, progress=progress, report=report)
    align(config, overwrite=overwrite, progress=progress, report=report)
    model = train(config, nproc=nproc, resume=resume, progress=progress, report=report)
    report.output("model", model)
    return model


def control(
    config: Any,
    *,
    nproc: int = 1,
    resume: bool = True,
    progress: bool = True,
    report: Reporter | None = None,
    seed: int | None = None,
) -> Path:
    """The CLM-only control (``fusion/control.py``): the fused training's run with
    lambda_clm = 1, into work_dir/control (another ``seed``: its own folder, see
    ``fusion/seeds.py``); returns its final model."""
    from fusion.seeds import seeded_control
    from fusion.train.trainer import finished

    report = report or Reporter()
    seed = config.train.seed if seed is None else seed
    run = seeded_control(config, seed)
    done = finished(run)
    what = "control (clm-only)" + ("" if seed == config.train.seed else f", seed {seed}")
    if done:
        report.status(f"{what}: finished earlier: {done}")
        return done
    report.status(f"{what}: the same training with lambda_clm = 1")
    return train(run, nproc=nproc, resume=resume, progress=progress, report=report)


@dataclass(frozen=True)
class SeedModels:
    """One training seed's fused model and its CLM-only control."""

    seed: int
    fused: Path
    control: Path


def trained_seeds(config: Any) -> list[SeedModels] | None:
    """Every seed's (fused, control) when all are finished, else None (nothing is trained)."""
    from fusion.seeds import seeded, seeded_control, training_seeds
    from fusion.train.trainer import finished

    out = []
    for seed in training_seeds(config):
        fused, clm = finished(seeded(config, seed)), finished(seeded_control(config, seed))
        if not (fused and clm):
            return None
        out.append(SeedModels(seed, fused, clm))
    return out


def fuse_with_control(
    config: Any,
    *,
    nproc: int = 1,
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
    report: Reporter | None = None,
) -> list[SeedModels]:
    """``fuse``, then the CLM-only control on the same store, once per training seed
    (``evaluate.seeds``, default ``train.seed``; extraction and the fused store are shared);
    returns each seed's (fused model, control model). A finished seed is not trained again.
    One-process trainings share one process group (see ``shared_process_group``)."""
    from fusion.seeds import seeded, training_seeds

    report = report or Reporter()
    extract(config, nproc=nproc, progress=progress, report=report)
    align(config, overwrite=overwrite, progress=progress, report=report)
    seeds = training_seeds(config)
    several = len(seeds) > 1
    done = trained_seeds(config) if resume else None
    if done is not None:
        which = f"{len(done)} seeds" if several else "fused and clm-only"
        report.status(f"training: finished earlier ({which})")
        return _reported(done, report)
    from fusion.launch import forget_single_rank
    from fusion.train.launch import shared_process_group
    from fusion.train.trainer import finished

    out = []
    with shared_process_group(nproc, report.status):
        for number, seed in enumerate(seeds, start=1):
            if several:
                report.status(f"seed {seed} ({number}/{len(seeds)}): fused and clm-only")
            run = seeded(config, seed)
            model = finished(run) if resume else None
            if model is not None:  # a finished seed of an interrupted multi-seed run
                report.status(f"train (fused): finished earlier: {model}")
            else:
                model = train(run, nproc=nproc, resume=resume, progress=progress, report=report)
            clm_only = control(
                config, nproc=nproc, resume=resume, progress=progress, report=report, seed=seed
            )
            out.append(SeedModels(seed, model, clm_only))
    forget_single_rank()
    return _reported(out, report)


def _reported(models: list[SeedModels], report: Reporter) -> list[SeedModels]:
    several = len(models) > 1
    for m in models:
        suffix = f" (seed {m.seed})" if several else ""
        report.output("model" + suffix, m.fused)
        report.output("control" + suffix, m.control)
    return models


# ------------------------------------------------------------------ FuseChat


def fuse_chat(
    chat: Any,
    *,
    nproc: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    report: Reporter | None = None,
) -> Path:
    """Fuse each source into the pivot (extract once, then align and train one pair at a
    time), then merge the pair targets relative to the pivot; returns the merged model."""
    from fusion.chat import (
        extraction_config,
        link_shared,
        merge_done,
        merge_spec,
        merged_dir,
        pair_config,
    )
    from fusion.merge.run import merge
    from fusion.train.trainer import finished

    report = report or Reporter()
    pairs = {source.name: pair_config(chat, source) for source in chat.sources}
    finals = {name: finished(pair) for name, pair in pairs.items()}
    if not all(finals.values()):
        extract(extraction_config(chat), nproc=nproc, progress=progress, report=report)
    for number, source in enumerate(chat.sources, start=1):
        label = f"pair {number}/{len(pairs)} ({source.name} -> {chat.pivot.name})"
        if finals[source.name]:
            report.status(f"{label}: finished earlier: {finals[source.name]}")
            continue
        report.status(f"{label}: align and train")
        link_shared(chat, source)
        align(pairs[source.name], overwrite=overwrite, progress=progress, report=report)
        finals[source.name] = train(
            pairs[source.name], nproc=nproc, resume=True, progress=progress, report=report
        )
    spec = merge_spec(chat, {name: Path(final) for name, final in finals.items() if final})
    out = merged_dir(chat)
    if merge_done(chat, spec):
        report.status(f"merge: finished earlier: {out}")
    else:
        report.status(
            f"merge: {spec.method} of {len(spec.models)} pair targets relative to the pivot"
        )
        merge(spec, out, overwrite=True, progress=progress)
    report.output("model", out)
    return out


# ------------------------------------------------------------------ EEVE


def vocab_train(
    config: Any, *, nproc: int = 1, progress: bool = True, report: Reporter | None = None
) -> Path:
    """EEVE's stages in order, each from the previous stage's model, skipping finished ones
    and resuming an interrupted one; returns the last stage's final model."""
    import yaml
    from transformers import AutoTokenizer

    from fusion import corpus as corpus_mod
    from fusion.train.clm_data import ClmDataset
    from fusion.train.launch import shared_process_group
    from fusion.train.trainer import finished
    from fusion.vocab.rows import new_rows
    from fusion.vocab.train import plan_steps, stage_config, stage_dir

    report = report or Reporter()
    rows = new_rows(Path(config.model))
    report.status(
        f"vocab train: {config.model} ({len(rows.ids)} new rows), {len(config.stages)} stages"
    )
    corpus = corpus_mod.prepare(config.corpus, config.work_dir)
    tokenizer = AutoTokenizer.from_pretrained(
        config.model, trust_remote_code=config.trust_remote_code
    )
    dataset = ClmDataset(
        config.work_dir, tokenizer, config.train.max_length, config.train.long_rows
    )
    report.status(f"corpus: {len(corpus)} rows, {dataset.positions} tokens ({corpus.directory})")
    final = Path(config.model)
    with shared_process_group(nproc, report.status):
        for number, stage in enumerate(config.stages, start=1):
            steps, epochs = plan_steps(stage, dataset, config.train, nproc)
            run = stage_config(config, number, steps, epochs)
            label = (
                f"stage {number}/{len(config.stages)} ({stage.name}: {', '.join(stage.trainable)})"
            )
            done = finished(run)
            if done:
                report.status(f"{label}: finished earlier: {done}")
                final = done
                continue
            report.status(f"{label}: {steps} steps at lr {stage.learning_rate}")
            folder = stage_dir(config, number)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "stage.yaml").write_text(
                yaml.safe_dump(run.model_dump(mode="json"), allow_unicode=True, sort_keys=False),
                encoding="utf-8",
            )
            final = train(run, nproc=nproc, resume=True, progress=progress, report=report)
    report.output("model", final)
    return final
