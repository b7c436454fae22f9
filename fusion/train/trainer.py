"""One rank of a training run: DeepSpeed engine, fused loss, checkpoints, resume, final model.

Every rank runs ``train``; a launcher (torchrun or deepspeed) or ``launch.run_training``
(one in-process rank) sets up the process group. Rank 0 writes the log, the checkpoint
pointer, the status file and the final model.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from fusion.config import TrainRunConfig
from fusion.launch import forget_single_rank
from fusion.train import checkpoint, checkpoint_manifest
from fusion.train.clm_data import ClmCollator
from fusion.train.data import Collator, DataState, MicroBatches
from fusion.train.ds_config import deepspeed_config
from fusion.train.extensions import watching_locks
from fusion.train.freeze import apply_trainable
from fusion.train.logbook import Logbook
from fusion.train.loss import IGNORE, FusedLoss, clm_loss, fused_loss
from fusion.train.setup import (
    RunPaths,
    TrainSetupError,
    load_tokenizer,
    new_row_ids,
    open_data,
    run_paths,
    single_rank_env,
)
from runrecords.atomic import atomic_directory, write_status_json
from runrecords.errors import Interrupted, UserError
from runrecords.settings import first_difference

# The file DeepSpeed's save_16bit_model writes a ZeRO-3 model's gathered weights to.
CONSOLIDATED = "consolidated-16bit.bin"
# Settings that may change between an interrupted run and its resume (they do not change
# what is computed); anything else must match the checkpoint.
RESUMABLE_CHANGES = {"save_every", "log_every", "keep_checkpoints", "tensorboard", "optimizer"}


def run_settings(config: TrainRunConfig, world_size: int) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed (data order, schedule, objective)."""
    section = config.train.model_dump(mode="json", exclude=RESUMABLE_CHANGES)
    return {"train": section, "world_size": world_size, "target": config.target.path}


def _quiet(text: str) -> None:
    return None


def train(
    config: TrainRunConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = _quiet,
    start: StartPoint | None = None,
) -> Path:
    """Train on the fused (or, with objective clm, the CLM) objective; returns the final model's
    directory. Rank 0 reports status lines through ``say`` and shows a progress bar unless
    ``progress`` is off. ``start`` is the launcher's choice of checkpoint (``start_point``);
    without it rank 0 chooses and tells the other ranks."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    single_rank_env()
    import deepspeed

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    cuda = torch.cuda.is_available()
    started_here = not dist.is_initialized()
    with watching_locks():  # DeepSpeed loads (or waits for the build of) its comm op here
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", verbose=False)
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    try:
        run = _Run(config, resume=resume, cuda=cuda, progress=progress, say=say, start=start)
        return run.run()
    finally:
        if started_here and dist.is_initialized():
            dist.destroy_process_group()
        if started_here:  # a later subprocess must not inherit this group's port
            forget_single_rank()


class _Run:
    def __init__(
        self,
        config: TrainRunConfig,
        *,
        resume: bool,
        cuda: bool,
        progress: bool,
        say: Callable[[str], None],
        start: StartPoint | None,
    ) -> None:
        self.config, self.section, self.resume, self.cuda = config, config.train, resume, cuda
        self.progress, self.say, self.start = progress, say, start
        self.paths: RunPaths = run_paths(config)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.stop_signal = 0
        self.partial: list[torch.nn.Parameter] = []
        # Where the run is, for the status an exit writes (set once "running" is written).
        self.started, self.step, self.steps = False, 0, 0

    # ------------------------------------------------------------ setup

    def _say(self, text: str) -> None:
        if self.rank == 0:
            self.say(text)

    def _status(self, status: str, **extra: Any) -> None:
        if self.rank == 0:
            write_status_json(self.paths.status, {"status": status, **extra})

    def _where_to_start(self) -> dict[str, Any] | None:
        """The launcher's choice, else rank 0's (verified once, by one process), given to
        every rank: all ranks load the same checkpoint or all refuse."""
        if self.start is not None:
            return self.start.pointer
        decided: list[Any] = [(None, None)]  # (pointer, error message)
        failure: Exception | None = None
        if self.rank == 0:
            try:
                chosen = start_point(self.config, self.world, resume=self.resume, say=self._say)
                decided[0] = (chosen.pointer, None)
            except Exception as err:  # told to the other ranks too: none waits for rank 0
                failure, decided[0] = err, (None, error_line(err))
        dist.broadcast_object_list(decided, src=0)
        pointer, error = decided[0]
        if failure is not None:
            raise failure
        if error is not None:
            raise checkpoint.CheckpointError(error)
        return pointer

    def _model(self, ds_config: dict[str, Any]) -> Any:
        from transformers import AutoModelForCausalLM

        target = self.config.target
        dtype = torch.bfloat16 if self.section.precision == "bf16" else torch.float32
        if self.section.zero_stage == 3:
            # Kept alive while loading: from_pretrained then builds the model partitioned
            # (deepspeed.zero.Init), so no rank ever holds the whole model.
            from transformers.integrations import HfDeepSpeedConfig

            self._hf_ds = HfDeepSpeedConfig(ds_config)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                target.path,
                revision=target.revision,
                dtype=dtype,
                trust_remote_code=target.trust_remote_code,
            )
        except (OSError, ValueError) as err:
            raise TrainSetupError(f"target.path {target.path}: cannot load ({err})") from None
        if self.section.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        # Before deepspeed.initialize: it partitions and groups what requires gradients now.
        self.partial = apply_trainable(model, self.section.trainable, new_row_ids(self.config))
        return model

    def _param_groups(self, model: Any, weight_decay: float) -> list[dict[str, Any]]:
        """No weight decay on biases and norm weights (as the HF Trainer FuseLLM used), nor on
        a partly frozen matrix: decay would move its frozen rows, whose gradient is zero."""
        partial = {id(p) for p in self.partial}
        decay, no_decay = [], []
        for param in model.parameters():
            if not param.requires_grad:
                continue
            shape = getattr(param, "ds_shape", param.shape)  # ZeRO-3 params are partitioned
            wide = len(shape) >= 2 and id(param) not in partial
            (decay if wide else no_decay).append(param)
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return [g for g in groups if g["params"]]

    # ------------------------------------------------------------ the run

    def run(self) -> Path:
        """``_run``, and on every exit after training started a truthful status.json: an
        error is recorded as ``failed`` with its message, a Ctrl-C as ``interrupted``,
        never left at ``running``."""
        try:
            return self._run()
        except Interrupted:
            raise  # the loop wrote "interrupted" with its checkpoint
        except KeyboardInterrupt:
            if self.started:
                self._status("interrupted", step=self.step, steps=self.steps)
            raise
        except BaseException as err:
            if self.started:
                self._status("failed", step=self.step, steps=self.steps, error=error_line(err))
            raise

    def _run(self) -> Path:
        import deepspeed
        from transformers import get_cosine_schedule_with_warmup, set_seed

        section, paths = self.section, self.paths
        if self.resume and finished(self.config):
            self._say(f"train: already finished: {paths.final}")
            return paths.final
        tokenizer = load_tokenizer(self.config)
        where, dataset = open_data(self.config, tokenizer)
        self.fuse_tail = getattr(dataset, "tail", "drop")
        pointer = self._where_to_start()
        if dataset.truncated:
            self._say(
                f"train: {dataset.truncated} of {len(dataset)} sequences are longer than "
                f"max_length={section.max_length} and were truncated"
            )
        set_seed(section.seed)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        batches = MicroBatches(
            dataset,
            ClmCollator(pad) if section.objective == "clm" else Collator(pad),
            micro_batch_size=section.micro_batch_size,
            epochs=section.epochs,
            seed=section.seed,
            rank=self.rank,
            world_size=self.world,
        )
        gas = section.gradient_accumulation_steps
        steps = batches.total // gas
        if section.max_steps:
            steps = min(steps, section.max_steps)
        if steps == 0:
            raise TrainSetupError(
                f"{where}: {len(dataset)} sequences make {batches.total} micro-batches per "
                f"rank, fewer than one optimizer step ({gas} x {self.world} processes)"
            )
        warmup = math.ceil(section.warmup_ratio * steps)
        ds_config = deepspeed_config(section, total_steps=steps, cuda=self.cuda)
        model = self._model(ds_config)
        engine, _, _, scheduler = deepspeed.initialize(
            model=model,
            model_parameters=self._param_groups(model, section.weight_decay),
            config=ds_config,
            lr_scheduler=lambda opt: get_cosine_schedule_with_warmup(opt, warmup, steps),
        )
        logbook = Logbook(paths.log, tensorboard=section.tensorboard) if self.rank == 0 else None
        step = 0
        if pointer is not None:
            state = checkpoint.load(engine, paths.checkpoints, pointer)
            batches.state = DataState(**state["data"])
            step = int(pointer["step"])
            if logbook:
                logbook.keep_until(step)
            self._say(f"train: resumed at step {step} from {paths.checkpoints / pointer['tag']}")
        elif logbook:
            logbook.start_fresh()
        self.started, self.step, self.steps = True, step, steps
        self._status("running", step=step, steps=steps)
        self._say(
            f"train: {len(dataset)} sequences, {steps} optimizer steps, {self.world} "
            f"process(es), ZeRO-{section.zero_stage}, {section.precision}"
        )
        with self._signals():
            step = self._loop(engine, scheduler, batches, step, steps, logbook)
        if logbook:
            logbook.close()
        final = self._save_final(engine, tokenizer)
        self._status("finished", step=step, steps=steps, final=str(final))
        return final

    def _loop(
        self,
        engine: Any,
        scheduler: Any,
        batches: MicroBatches,
        step: int,
        steps: int,
        logbook: Logbook | None,
    ) -> int:
        from tqdm.auto import tqdm

        section, gas = self.section, self.section.gradient_accumulation_steps
        stream = iter(batches)
        progress = tqdm(
            total=steps,
            initial=step,
            desc="train",
            unit="step",
            disable=self.rank != 0 or not self.progress,
            file=sys.stderr,
            mininterval=1.0,
        )
        while step < steps:
            began = time.perf_counter()
            lr = float(scheduler.get_last_lr()[0])
            sums = torch.zeros(5, dtype=torch.float64)
            for _ in range(gas):
                batch = {key: value.to(engine.device) for key, value in next(stream).items()}
                out = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                parts = self._loss(out.logits, batch)
                engine.backward(parts.loss)
                engine.step()
                sums[:4] += torch.tensor(
                    [
                        float(parts.loss.detach()),
                        float(parts.clm),
                        float(parts.fuse),
                        parts.positions,
                    ],
                    dtype=torch.float64,
                )
            step += 1
            self.step = step
            sums[4] = float(self.stop_signal)
            reduced = sums.to(engine.device)
            dist.all_reduce(reduced)  # one collective: mean losses, total tokens, any stop
            loss, clm, fuse, tokens, stop = reduced.cpu().tolist()
            mean = 1.0 / (gas * self.world)
            norm = engine.get_global_grad_norm()
            record = {
                "step": step,
                "epoch": batches.state.epoch,
                "loss": loss * mean,
                "clm": clm * mean,
                "fuse": fuse * mean,
                "lr": lr,
                "grad_norm": None if norm is None else float(norm),
                "tokens": int(tokens),
                "time": round(time.perf_counter() - began, 4),
            }
            if logbook and (step % section.log_every == 0 or step == steps or stop):
                logbook.write(record)
            progress.update(1)
            progress.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
            if step % section.save_every == 0 or (stop and step < steps):
                self._checkpoint(engine, batches, step)
            if stop and step < steps:
                progress.close()
                self._status("interrupted", step=step, steps=steps)
                raise Interrupted(
                    f"train: interrupted after step {step} of {steps}; checkpoint in "
                    f"{self.paths.checkpoints}; rerun with --resume to continue"
                )
        progress.close()
        return step

    def _loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> FusedLoss:
        """The fused objective, or plain CLM (``objective: clm``, logged with fuse = 0)."""
        section = self.section
        if section.objective == "clm":
            clm = clm_loss(logits, batch["labels"])
            zero = torch.zeros((), dtype=clm.dtype)
            positions = int((batch["labels"] != IGNORE).sum())
            return FusedLoss(loss=clm, clm=clm.detach(), fuse=zero, positions=positions)
        return fused_loss(
            logits,
            batch["labels"],
            batch["topk_ids"],
            batch["topk_logprobs"],
            lambda_clm=section.lambda_clm,
            kind=section.fuse_loss,
            tail=self.fuse_tail,
        )

    def _checkpoint(self, engine: Any, batches: MicroBatches, step: int) -> None:
        run = {"settings": run_settings(self.config, self.world)}
        state = {"data": {"epoch": batches.state.epoch, "batch": batches.state.batch}}
        checkpoint.save(
            engine, self.paths.checkpoints, step, state, run, keep=self.section.keep_checkpoints
        )

    @contextmanager
    def _signals(self) -> Any:
        """SIGTERM and Ctrl-C set a flag; the loop finishes its step, saves and stops."""

        def handler(signum: int, frame: Any) -> None:
            self.stop_signal = signum

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Outside the main thread signals stay with the caller (ValueError).
            with contextlib.suppress(ValueError):
                previous[sig] = signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _save_final(self, engine: Any, tokenizer: Any) -> Path:
        """A Hugging Face model with its tokenizer, written aside and moved into place only
        when complete (``atomic_directory``): a crash never leaves a half-written model, nor
        removes a finished one before its replacement is whole."""
        final = self.paths.final
        consolidated = final.parent / f".{final.name}.consolidated"
        if self.section.zero_stage == 3:
            # DeepSpeed's public export gathers every rank's shard (all ranks must call it;
            # rank 0 writes the full 16-bit state dict).
            engine.save_16bit_model(str(consolidated), CONSOLIDATED)
        if self.rank == 0:
            if self.section.zero_stage == 3:
                state_dict = torch.load(consolidated / CONSOLIDATED, weights_only=True)
            else:
                state_dict = engine.module.state_dict()
            with atomic_directory(final) as scratch:
                engine.module.save_pretrained(
                    scratch, state_dict=state_dict, safe_serialization=True
                )
                tokenizer.save_pretrained(scratch)
            shutil.rmtree(consolidated, ignore_errors=True)
            self._say(f"train: final model: {final}")
        dist.barrier()
        return final


def error_line(err: BaseException) -> str:
    """An exception as the one line status.json keeps (a user error's message as it is)."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(err, UserError):
        return text[:500]
    return f"{type(err).__name__}: {text}"[:500] if text else type(err).__name__


@dataclass(frozen=True)
class StartPoint:
    """Where a run starts, decided once before its ranks do anything: the checkpoint to
    resume (its manifest: tag, step, settings), or None for step 0."""

    pointer: dict[str, Any] | None


def start_point(
    config: TrainRunConfig,
    world: int,
    *,
    resume: bool,
    say: Callable[[str], None] = _quiet,
) -> StartPoint:
    """The checkpoint to resume: the newest intact one (``say`` names each damaged newer one
    and why); refuses to clobber or mix runs, or to resume when none is intact."""
    root = run_paths(config).checkpoints
    if not resume:
        if checkpoint_manifest.exists(root):
            raise TrainSetupError(
                f"{run_paths(config).output}: holds an earlier run's checkpoints; "
                "pass --resume to continue it, or remove the folder / set train.output"
            )
        return StartPoint(None)
    choice = checkpoint_manifest.newest_intact(root)
    for line in choice.notes:
        say(line)
    pointer = choice.chosen
    if pointer is None:
        say(f"train: no checkpoint in {root}; starting at step 0")
        return StartPoint(None)
    settings = run_settings(config, world)
    if pointer.get("settings") != settings:
        diff = first_difference(pointer.get("settings", {}), settings, nested=True, sort=True)
        source = root / pointer["tag"] / checkpoint.MANIFEST
        raise checkpoint.CheckpointError(
            f"{source if source.exists() else root / checkpoint.POINTER}: made with other "
            f"settings ({diff}); resume with the same config and process count, or start afresh"
        )
    return StartPoint(pointer)


def decided_start(config: TrainRunConfig, tag: str) -> StartPoint:
    """The start a launcher chose and passed to its ranks (``--start-tag``; ``none``: step 0)."""
    if tag == "none":
        return StartPoint(None)
    return StartPoint(checkpoint_manifest.describe(run_paths(config).checkpoints, tag))


def finished(config: TrainRunConfig) -> Path | None:
    """The final model of a finished run in this output, if there is one."""
    paths = run_paths(config)
    return paths.final if paths.final.is_dir() and _status_of(paths) == "finished" else None


def _status_of(paths: RunPaths) -> str | None:
    import json

    if not paths.status.is_file():
        return None
    return json.loads(paths.status.read_text(encoding="utf-8")).get("status")
