"""What a fusion config's ``evaluate`` section asks for: the models under their labels, the
tasks, and one ``EvalSpec`` per model. Checked before any training, so that a typo in a task
name costs one line (exit 2), not a training run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fusion.config import ConfigError, FuseConfig
from fusion.pipeline import SeedModels
from harness.backends import BackendOptions
from harness.errors import HarnessError
from harness.specs import EvalSpec
from reports.rundir import Manifest

# Run labels: the names reports show (a trained model's folder is just `final`).
BASE, CONTROL, FUSED = "base", "clm-only", "fused"
LABELS = (BASE, CONTROL, FUSED)


@dataclass(frozen=True)
class Subject:
    """One model to evaluate, under its label."""

    label: str
    model: str  # local directory or Hub id
    revision: str | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class Plan:
    tasks: list[str]  # names as given (groups kept) that this catalogue knows
    expanded: list[str]  # the tasks they stand for (what results hold)
    skipped: list[str]  # default names this catalogue lacks (another branch's task)
    num_fewshot: list[int]


def field_error(config: FuseConfig, field: str, message: str) -> ConfigError:
    """One line naming the config file and the field, as the config loader's errors do."""
    return ConfigError(f"{config.source_file}: field {field}: {message}")


def make_plan(config: FuseConfig) -> Plan:
    """The tasks and shot counts to run; a bad task name or a source named like a label is
    a ConfigError. A name from the default list that is not in the catalogue is skipped
    (``ko_bpb`` arrives on another branch): the default must work either way."""
    from tasks import catalog
    from tasks.errors import TaskDataError

    section = config.evaluate
    assert section is not None
    known = set(catalog.all_tasks()) | set(catalog.all_groups())
    explicit = "tasks" in section.model_fields_set
    names, skipped = [], []
    for name in dict.fromkeys(section.tasks):
        if name in known:
            names.append(name)
        elif explicit:
            try:
                catalog.expand_own([name], "the fusion config's evaluate section")
            except TaskDataError as err:
                raise field_error(config, "evaluate.tasks", str(err)) from None
        else:
            skipped.append(name)
    if not names:
        raise field_error(
            config, "evaluate.tasks", "none of the default tasks is in this task catalogue"
        )
    if section.sources:
        for index, source in enumerate(config.sources):
            if source.name in LABELS or source.name.startswith(
                (CONTROL + "-seed-", FUSED + "-seed-")
            ):
                raise field_error(
                    config,
                    f"sources.{index}.name",
                    f"{source.name!r} is an evaluation label ({', '.join(LABELS)}); rename "
                    "the source",
                )
    return Plan(
        tasks=names,
        expanded=catalog.expand(names),
        skipped=skipped,
        num_fewshot=sorted(set(section.num_fewshot)),
    )


@dataclass(frozen=True)
class SeedLabels:
    """One training seed's evaluation runs: the folder labels under work_dir/eval (a seed
    equal to ``train.seed`` keeps a one-seed run's ``clm-only`` and ``fused``) and the labels
    reports show (with several seeds, every run names its seed)."""

    seed: int
    control: str
    fused: str
    control_shown: str
    fused_shown: str


def seed_suffix(seed: int) -> str:
    return f"-seed-{seed}"


def seed_labels(config: FuseConfig) -> list[SeedLabels]:
    from fusion.seeds import is_home_seed, training_seeds

    seeds = training_seeds(config)
    out = []
    for seed in seeds:
        suffix = seed_suffix(seed)
        home = is_home_seed(config, seed)
        shown = suffix if len(seeds) > 1 else ""
        out.append(
            SeedLabels(
                seed,
                CONTROL if home else CONTROL + suffix,
                FUSED if home else FUSED + suffix,
                CONTROL + shown,
                FUSED + shown,
            )
        )
    return out


def subjects(config: FuseConfig, trained: list[SeedModels]) -> list[Subject]:
    """Base, each source (when ``evaluate.sources``), then per training seed the control and
    the fused model: the strengths leaderboard's rows, in this order."""
    section, target = config.evaluate, config.target
    assert section is not None
    out = [Subject(BASE, target.path, target.revision, target.trust_remote_code)]
    if section.sources:
        out += [Subject(s.name, s.path, s.revision, s.trust_remote_code) for s in config.sources]
    labels = {x.seed: x for x in seed_labels(config)}
    for models in trained:
        names = labels[models.seed]
        remote = target.trust_remote_code
        out.append(Subject(names.control, str(models.control), trust_remote_code=remote))
        out.append(Subject(names.fused, str(models.fused), trust_remote_code=remote))
    return out


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def eval_spec(config: FuseConfig, plan: Plan, subject: Subject, output: Path) -> EvalSpec:
    """``fusebench eval``'s spec for one model; unset fields keep eval's defaults."""
    section = config.evaluate
    assert section is not None
    options: dict = {
        "dtype": section.dtype,
        "device": section.device or default_device(),
        "trust_remote_code": subject.trust_remote_code,
        "revision": subject.revision,
    }
    if section.batch_size is not None:
        options["batch_size"] = section.batch_size
    extra: dict = {} if section.seed is None else {"seed": section.seed}
    limit = section.limit
    if limit is not None and limit >= 1:
        limit = int(limit)  # a count of documents, as `fusebench eval --limit 50` records it
    return EvalSpec(
        model=subject.model,
        tasks=plan.tasks,
        output=output,
        num_fewshot=plan.num_fewshot,
        backend=section.backend,
        options=BackendOptions(**options),
        limit=limit,
        label=subject.label,
        apply_chat_template=section.apply_chat_template,
        system_instruction=section.system_instruction,
        fewshot_as_multiturn=section.fewshot_as_multiturn,
        nproc=section.nproc,
        **extra,
    )


def changed_settings(run: Path, spec: EvalSpec) -> list[str]:
    """Which of the evaluate section's settings differ from those ``run`` was evaluated with
    (empty for a new run): such a run is refused, or replaced with ``fuse run --overwrite``."""
    from harness.evaluate import seeds_for
    from reports import rundir
    from reports.errors import BadFile

    if not (run / rundir.MANIFEST).is_file():
        return []
    try:
        old = rundir.read_manifest(run)
    except BadFile:
        return []  # run_eval names the broken file
    new_args = spec.options.recorded()
    pairs = {
        "limit": (old.limit, spec.limit),
        "seed": (old.seeds, seeds_for(spec.seed)),
        "backend": (old.backend.name, spec.backend),
        "dtype": (old.backend.args.get("dtype"), new_args["dtype"]),
        **_chat_pairs(old, spec),
    }
    return [name for name, (a, b) in pairs.items() if a != b]


def unchanged_or_refused(run: Path, spec: EvalSpec, overwrite: bool) -> str:
    """The settings ``run`` was evaluated with that differ from ``spec``'s, said in words
    (empty: none or a new run); refused in one line unless ``overwrite``."""
    changed = ", ".join(changed_settings(run, spec))
    if changed and not overwrite:
        raise HarnessError(
            f"{run}: evaluated with other settings ({changed}) than the config's evaluate "
            "section; rerun with --overwrite to evaluate again"
        )
    return changed


def _chat_pairs(old: Manifest, spec: EvalSpec) -> dict[str, tuple]:
    """The chat settings as recorded and as asked for (a changed template text under the same
    setting is ``run_eval``'s to find: it compares the template's sha256)."""
    from harness.chat_format import multiturn
    from reports.rundir import ChatSettings

    chat = old.chat or ChatSettings()
    return {
        "apply_chat_template": (chat.apply_chat_template, spec.apply_chat_template),
        "system_instruction": (chat.system_instruction, spec.system_instruction),
        "fewshot_as_multiturn": (chat.fewshot_as_multiturn, multiturn(spec)),
    }
