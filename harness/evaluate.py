"""``fusebench eval``: lm-eval over fusebench's tasks, into a resumable run directory.

Each (task, shot count) is one lm-eval evaluation whose results land atomically before the
next starts, so an interrupted run loses at most the task it was on, and a rerun with the
same settings picks up there, once it has checked that what the manifest records as finished
is on disk and intact (what is not is redone, and said so). Settings that change the numbers
(model weights, backend, dtype, limit, seeds, task versions, chat template and system
instruction) must match an existing run, or the rerun is refused.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness import __version__, chat_format
from harness.backends import build_backend
from harness.errors import HarnessError
from harness.eval_launch import check_nproc, run_ranked
from harness.models import cache_key, resolve_model
from harness.specs import EvalSpec
from reports import rundir
from reports.rundir import BackendInfo, ChatSettings, Completed, Manifest, ModelInfo, TaskEntry
from reports.rundir_verify import broken_entries
from runrecords import lock
from runrecords.atomic import write_json_atomic, write_jsonl_atomic
from runrecords.digest import sha256_file
from runrecords.errors import Interrupted, UserError
from runrecords.settings import differences
from runrecords.space import DiskFull
from tasks import catalog
from tasks.datadir import data_dir
from tasks.loaders import load_benchmark

# Settings that are free to change between a run and its resumption.
_FREE_BACKEND_ARGS = {"batch_size", "device"}


def recorded_backend_args(spec: EvalSpec) -> dict:
    """The backend arguments as the manifest records them: what the backend is really given
    (lm-eval's vLLM model always gets ``batch_size="auto"``, never the hf backends' number)."""
    args = spec.options.recorded()
    if spec.backend == "vllm":
        args["batch_size"] = "auto"
    return args


def git_commit() -> str | None:
    """The fusebench commit, when running from a checkout (with ``-dirty`` if modified)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "-uno"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def seeds_for(seed: int) -> dict[str, int]:
    return {"random": seed, "numpy": seed, "torch": seed, "fewshot": seed}


def _comparable(manifest: Manifest) -> dict[str, Any]:
    backend_args = {k: v for k, v in manifest.backend.args.items() if k not in _FREE_BACKEND_ARGS}
    return {
        "model": manifest.model.model_dump(),
        "backend": manifest.backend.name,
        "backend args": backend_args,
        "limit": manifest.limit,
        "seeds": manifest.seeds,
        **(manifest.chat or ChatSettings()).comparable(),
    }


def _check_same_settings(old: Manifest, new: Manifest, run: Path) -> None:
    differing = [d.key for d in differences(_comparable(old), _comparable(new))]
    versions = {t.name: t.version for t in new.tasks}
    differing += [
        f"version of {t.name} ({t.version} -> {versions[t.name]})"
        for t in old.tasks
        if t.name in versions and versions[t.name] != t.version
    ]
    configs = {t.name: t.config_sha256 for t in new.tasks}
    differing += [
        f"config of {t.name} (its YAML changed)"
        for t in old.tasks
        if t.name in configs and t.config_sha256 and configs[t.name] != t.config_sha256
    ]
    if differing:
        raise HarnessError(
            f"{run} holds a run with different settings ({'; '.join(differing)}); "
            "use another --output, or --overwrite to replace it"
        )


def _merge_manifests(old: Manifest, new: Manifest) -> Manifest:
    """Resume: keep what was finished and the union of tasks and shots asked for."""
    tasks = {t.name: t for t in old.tasks} | {t.name: t for t in new.tasks}
    return new.model_copy(
        update={
            "tasks": list(tasks.values()),
            "requested_tasks": list(dict.fromkeys(old.requested_tasks + new.requested_tasks)),
            "num_fewshot": sorted(set(old.num_fewshot) | set(new.num_fewshot)),
            "completed": old.completed,
            "started_at": old.started_at,
            "label": new.label or old.label,  # a label is kept unless another is given
            "include_path": list(dict.fromkeys(old.include_path + new.include_path)),
            "groups": list(
                ({g.name: g for g in old.groups} | {g.name: g for g in new.groups}).values()
            ),
        }
    )


def open_run(spec: EvalSpec, manifest: Manifest) -> Manifest:
    """Create the run directory, or resume the one there, or refuse."""
    run = spec.output
    if run.exists() and not run.is_dir():
        raise HarnessError(f"{run}: exists and is not a directory")
    if run.is_dir() and lock.entries(run):  # the command's own lock file does not count
        if not (run / rundir.MANIFEST).is_file():
            raise HarnessError(f"{run}: not empty and not a fusebench run; choose another --output")
        if spec.overwrite:
            lock.clear(run)  # not rmtree: the lock file stays, and with it the lock
        else:
            old = rundir.read_manifest(run)  # a broken manifest is a BadFile naming it
            _check_same_settings(old, manifest, run)
            manifest = _merge_manifests(old, manifest)
    run.mkdir(parents=True, exist_ok=True)
    rundir.write_manifest(run, manifest)
    return manifest


def _task_entries(infos: dict[str, catalog.TaskInfo]) -> list[TaskEntry]:
    return [
        TaskEntry(
            name=n,
            version=i.version,
            benchmark=i.benchmark,
            source=i.source,
            split=i.split,
            metric=i.metric,
            higher_is_better=i.higher_is_better,
            origin=i.origin,
            output_type=i.output_type,
            config_sha256=i.config_sha256,
            zero_shot_only=i.zero_shot_only,
        )
        for n, i in infos.items()
    ]


def _foreign(include: tuple[str, ...]):
    from tasks.registry import foreign

    return foreign(include)


def _check_foreign_data(
    infos: dict[str, catalog.TaskInfo], pending: list[tuple[str, int]], include: tuple[str, ...]
) -> None:
    """Load the data of each lm-eval or include-path task still to run, before the model:
    data that cannot be had (the Hub offline, a missing file) is one line naming the task,
    and nothing is evaluated. The datasets library caches what it loaded for the run."""
    for name in dict.fromkeys(t for t, _ in pending if not infos[t].own):
        _foreign(include).build_task(name)


def _note_replaced(
    infos: dict[str, catalog.TaskInfo], include: tuple[str, ...], console: Console
) -> None:
    """Said once: a task of the user's folder that replaces lm-eval's of the same name, and
    one that is not used because fusebench has a task of that name."""
    from tasks.registry import include_names

    shadowed = [n for n in include_names(include) if n in infos and infos[n].own]
    for name in shadowed:
        console.print(
            f"[yellow]note[/] {name}: fusebench's own task runs, not the --include-path task "
            "of that name (rename yours to run it)",
            soft_wrap=True,
        )
    if all(info.own for info in infos.values()):
        return
    replaced = _foreign(include).replaced
    for name in [n for n in infos if n in replaced]:
        console.print(
            f"[dim]note[/] {name}: the --include-path task replaces lm-eval's ({replaced[name]})",
            soft_wrap=True,
        )


def _quiet_git_hash() -> str | None:
    """lm-eval records ``git describe`` of the current directory and lets git print
    "fatal: not a git repository" to the terminal outside one; same value, no noise."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _evaluate_one(lm, task: str, shots: int, spec: EvalSpec, task_manager, use_cache) -> dict:
    """One lm-eval evaluation. ``task_manager`` is fusebench's own (its tasks by name) or a
    ``tasks.registry.Foreign``, whose task is built first so that data that cannot be loaded
    (the Hub offline) is one line naming the task."""
    from lm_eval import simple_evaluate

    from tasks.registry import Foreign

    requested: list = [task]
    if isinstance(task_manager, Foreign):
        requested, task_manager = [task_manager.build_task(task)], task_manager.manager
    seeds = seeds_for(spec.seed)
    results = simple_evaluate(
        model=lm,
        tasks=requested,
        num_fewshot=shots,
        limit=spec.limit,
        log_samples=True,
        task_manager=task_manager,
        use_cache=use_cache,
        random_seed=seeds["random"],
        numpy_random_seed=seeds["numpy"],
        torch_random_seed=seeds["torch"],
        fewshot_random_seed=seeds["fewshot"],
        **chat_format.settings(spec),
    )
    if results is None:  # non-zero ranks in a multi-process run
        raise HarnessError("lm-eval returned no results (is this a non-zero rank?)")
    return results


def _check_local_data(infos: dict[str, catalog.TaskInfo]) -> None:
    """Parse each benchmark's local files now (kept for the evaluation, parsed once): a file
    that is malformed or not UTF-8 is refused before the run directory is written. Hub data
    is left to the evaluation (no download for tasks a resumed run skips); lm-eval and
    include-path tasks' data is loaded by lm-eval (``_check_foreign_data``)."""
    if data_dir() is None:
        return
    for benchmark in sorted({info.benchmark for info in infos.values() if info.own}):
        load_benchmark(benchmark)


def run_eval(spec: EvalSpec, console: Console | None = None) -> Path:
    """Evaluate, resuming where an earlier run into the same directory stopped."""
    console = console or Console(stderr=True)
    check_nproc(spec)
    include = tuple(str(p) for p in spec.include_path)
    infos = catalog.resolve(spec.tasks, include)
    task_names = list(infos)
    if any(n < 0 for n in spec.num_fewshot):
        raise HarnessError("--num-fewshot: shot counts must be >= 0")
    catalog.check_shots(infos, spec.num_fewshot)
    _check_local_data(infos)
    _note_replaced(infos, include, console)
    model = resolve_model(spec.model, spec.options.revision)
    chat = chat_format.resolve(spec, model)
    if chat.note:
        console.print(f"[yellow]note[/] {escape(chat.note)}", soft_wrap=True)
    manifest = Manifest(
        fusebench_version=__version__,
        git_commit=git_commit(),
        model=model,
        backend=BackendInfo(name=spec.backend, args=recorded_backend_args(spec)),
        requested_tasks=spec.tasks,
        tasks=_task_entries(infos),
        num_fewshot=sorted(set(spec.num_fewshot)),
        seeds=seeds_for(spec.seed),
        limit=spec.limit,
        started_at=rundir.now(),
        label=spec.label,
        include_path=[str(Path(p).expanduser().resolve()) for p in include],
        chat=chat.record,
        groups=catalog.requested_groups(spec.tasks, include),
    )
    manifest = open_run(spec, manifest)
    run = spec.output
    settings = [
        (t, n)
        for n in sorted(set(spec.num_fewshot))
        for t in task_names
        if catalog.scored_at(t, n, infos[t])
    ]
    _forget_broken(run, manifest, settings, console)
    pending = [(t, n) for t, n in settings if not manifest.is_done(t, n)]
    for task, shots in [(t, n) for t, n in settings if manifest.is_done(t, n)]:
        console.print(f"[dim]skip[/] {task} {shots}-shot: already in {run}")
    zero_only = [t for t in task_names if not catalog.scored_at(t, max(spec.num_fewshot), infos[t])]
    if zero_only and max(spec.num_fewshot) > 0:
        console.print(f"[dim]note[/] {', '.join(zero_only)}: scored at 0 shots only")
    if not pending:
        manifest.status, manifest.finished_at = "complete", manifest.finished_at or rundir.now()
        rundir.write_manifest(run, manifest)
        return run
    if spec.nproc > 1:
        return run_ranked(spec, manifest, pending, console)
    return run_pending(spec, manifest, pending, infos, model, console)


def load_model(spec: EvalSpec, model: ModelInfo):
    """The backend's model for ``spec``, rendering with the chat template the manifest
    records (resolved from the model's own tokenizer, as ``chat_format.resolve`` resolved it
    before the run opened; every rank of ``--nproc`` loads its own model)."""
    lm = build_backend(spec.backend, model.name_or_path, spec.options)
    if spec.apply_chat_template:
        text = chat_format.template_text(lm.tokenizer, spec.apply_chat_template, spec.model)
        chat_format.use_template(lm, text)
    return lm


def run_pending(
    spec: EvalSpec,
    manifest: Manifest,
    pending: list[tuple[str, int]],
    infos: dict[str, catalog.TaskInfo],
    model: ModelInfo,
    console: Console,
) -> Path:
    """Evaluate each pending (task, shots) into the run directory opened by ``run_eval``
    (in its process, or on rank 0 of ``--nproc N``), recording each as it lands."""
    run, include = spec.output, tuple(str(p) for p in spec.include_path)
    use_cache = None
    if spec.cache_dir is not None:
        key = cache_key(model, spec.backend, spec.options.dtype)
        use_cache = str(spec.cache_dir / key / "lm_eval")
    try:
        from harness.backends.shared_context import (  # torch, lm-eval: only with work to do
            rolling_scores_bos,
            truncated_documents,
        )

        _check_foreign_data(infos, pending, include)
        console.print(f"loading {spec.model} ({spec.backend})")
        lm = load_model(spec, model)
        import lm_eval.evaluator

        lm_eval.evaluator.get_git_commit_hash = _quiet_git_hash
        own_manager = catalog.task_manager() if any(infos[t].own for t, _ in pending) else None
        for index, (task, shots) in enumerate(pending, 1):
            task_manager = own_manager if infos[task].own else _foreign(include)
            console.print(f"[bold][{index}/{len(pending)}][/] {task} {shots}-shot")
            if infos[task].output_type == "loglikelihood_rolling" and rolling_scores_bos(lm):
                console.print(
                    f"  [yellow]{spec.backend}: lm-eval's rolling log-likelihood counts "
                    "log P(BOS | BOS) in every document with this tokenizer; --backend hf "
                    "scores the text alone[/]"
                )
            started = time.monotonic()
            results = _evaluate_one(lm, task, shots, spec, task_manager, use_cache)
            truncated = truncated_documents(lm, results, task)
            if truncated:
                console.print(
                    f"  [yellow]{truncated} document(s) longer than the model's "
                    "maximum length: truncated from the left[/]"
                )
            n_samples = len(results.get("samples", {}).get(task, []))
            results_sha256, samples_sha256 = _store(run, shots, task, results)
            manifest.completed.append(
                Completed(
                    task=task,
                    num_fewshot=shots,
                    finished_at=rundir.now(),
                    seconds=round(time.monotonic() - started, 2),
                    n_samples=n_samples,
                    truncated=truncated,
                    results_sha256=results_sha256,
                    samples_sha256=samples_sha256,
                )
            )
            rundir.write_manifest(run, manifest)
    except KeyboardInterrupt:
        manifest.status = "interrupted"
        done = len(manifest.completed)
        stopped = Interrupted(
            f"interrupted; {done} task evaluation(s) are saved in {run}: rerun the same "
            "command to continue"
        )
        _record_end(run, manifest, stopped)
        raise stopped from None
    except BaseException as err:
        manifest.status, manifest.error = "failed", f"{type(err).__name__}: {err}"[:500]
        _record_end(run, manifest, err)
        raise
    manifest.status, manifest.finished_at, manifest.error = "complete", rundir.now(), None
    rundir.write_manifest(run, manifest)
    return run


def _record_end(run: Path, manifest: Manifest, err: BaseException) -> None:
    """Record how the run ended (on a full disk too, rundir.write_end_status). When even
    that fails, a user error says so in its one line (the manifest keeps its old status);
    any other error is raised as it is."""
    try:
        rundir.write_end_status(run, manifest)
    except DiskFull as lost:
        if not isinstance(err, UserError):
            raise err from lost
        both = UserError(f"{err}; and {lost}, so it still says the run is running")
        both.exit_code = err.exit_code
        raise both from err


def _forget_broken(
    run: Path, manifest: Manifest, settings: list[tuple[str, int]], console: Console
) -> None:
    """Resume trusts the files, not the manifest: a finished entry whose results or samples
    are missing or broken is dropped from ``completed`` (so it is redone when asked for), and
    a results.json that cannot be read is removed (a redo merges into it)."""
    broken, unusable = broken_entries(run, manifest)
    if not broken:
        return
    for shots in unusable:
        (rundir.shot_dir(run, shots) / rundir.RESULTS).unlink(missing_ok=True)
    asked = set(settings)
    for item in broken:
        task, shots = item.entry.task, item.entry.num_fewshot
        verb = "redo" if (task, shots) in asked else "forget"
        console.print(
            f"[yellow]{verb}[/] {task} {shots}-shot: {escape(item.reason)}", soft_wrap=True
        )
    gone = [id(item.entry) for item in broken]
    manifest.completed = [c for c in manifest.completed if id(c) not in gone]
    manifest.status, manifest.finished_at = "running", None
    rundir.write_manifest(run, manifest)


def _store(run: Path, shots: int, task: str, results: dict) -> tuple[str, str]:
    """Samples first, then results: a task counts as done only once both are on disk.
    Returns the sha256 of the task's entry in results.json and of its samples file, as
    read back from disk (what a resume checks them against)."""
    samples = results.pop("samples", {}).get(task, [])
    samples_file = rundir.samples_path(run, shots, task)
    write_jsonl_atomic(samples_file, samples)
    merged = rundir.merge_results(rundir.read_results(run, shots), results)
    write_json_atomic(rundir.shot_dir(run, shots) / rundir.RESULTS, merged)
    written = rundir.read_results(run, shots) or {}
    return rundir.task_digest(written, task), sha256_file(samples_file)
