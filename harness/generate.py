"""LogicKor generation: each question's two turns against an OpenAI-compatible server.

Turn 1 sends the strategy's messages plus question 1; turn 2 adds the model's own first
answer and question 2 (as LogicKor's generators do). Greedy (temperature 0), ``max_tokens``,
stop sequences (LogicKor's list by default; text from a stop sequence on is cut, as vLLM
does); answers are stripped like LogicKor's.

Output: ``<run>/logickor/<strategy>.jsonl`` in LogicKor's generated format (id, category,
questions, outputs, references). Each finished question is appended to a hidden part file
(fsync), so an interrupted run continues where it stopped without repeating a finished
question; the final file is written atomically in question order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness import __version__
from harness.errors import HarnessError
from harness.specs import GenerateSpec
from judges.redact import Redactor
from reports import rundir
from runrecords.atomic import write_json_atomic, write_jsonl_atomic
from runrecords.digest import sha256_file
from runrecords.errors import Interrupted
from runrecords.journal import append_journal, read_journal
from runrecords.settings import differences

LOGICKOR_DIR = "logickor"
RECORD = "generation.json"


def part_path(final: Path) -> Path:
    return final.parent / f".{final.name}.part"


def check_chat_template(spec: GenerateSpec) -> str | None:
    """The chat template's sha256, or None when the server owns it. A model without one is a
    user error (with the fix): chat models must be prompted in their own format."""
    if spec.chat_template is not None:
        if not spec.chat_template.is_file():
            raise HarnessError(f"--chat-template {spec.chat_template}: no such file")
        if spec.serve is None:
            raise HarnessError(
                "--chat-template applies to a server fusebench starts (--serve); "
                "give it to your own server instead"
            )
        return sha256_file(spec.chat_template)
    local = Path(spec.model).is_dir()
    if spec.serve is None and not local:
        return None  # an external server's model: its template is the server's business
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            spec.model, trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise HarnessError(f"{spec.model}: cannot load its tokenizer ({err})") from None
    template = tokenizer.chat_template
    if not template:
        raise HarnessError(
            f"{spec.model}: the tokenizer has no chat template; give one with "
            "--chat-template FILE (a Jinja template)"
        )
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _model_info(model: str) -> rundir.ModelInfo:
    if Path(model).is_dir():
        from harness.models import resolve_model

        return resolve_model(model)
    return rundir.ModelInfo(name_or_path=model, revision=None, local=False, sha256=None)


def _settings(spec: GenerateSpec, model: rundir.ModelInfo, template_sha: str | None) -> dict:
    """What the outputs depend on: a rerun with other settings is refused (or --overwrite)."""
    return {
        "model": model.name_or_path,
        "sha256": model.sha256,
        "max_tokens": spec.max_tokens,
        "stop": list(spec.stop),
        "chat_template_sha256": template_sha,
        "temperature": 0.0,
    }


def _open_run(spec: GenerateSpec, model: rundir.ModelInfo, settings: dict) -> dict:
    out = spec.output / LOGICKOR_DIR
    record_path = out / RECORD
    record: dict[str, Any] = {}
    if record_path.is_file():
        from reports.jsonio import read_json

        record = read_json(record_path)
        if record.get("settings") != settings:
            if not spec.overwrite:
                old = record.get("settings") or {}
                changed = [d.key for d in differences(old, settings, sort=True)]
                raise HarnessError(
                    f"{spec.output}: holds a LogicKor generation with other "
                    f"settings ({', '.join(changed)}); --overwrite replaces it"
                )
            for strategy in spec.strategies:
                (out / f"{strategy}.jsonl").unlink(missing_ok=True)
                part_path(out / f"{strategy}.jsonl").unlink(missing_ok=True)
            record = {}
    manifest_path = spec.output / rundir.MANIFEST
    if manifest_path.is_file():
        manifest = rundir.read_manifest(spec.output)
        if manifest.model.name_or_path != model.name_or_path and not spec.overwrite:
            raise HarnessError(
                f"{manifest_path}: a run of {manifest.model.name_or_path}, not "
                f"{model.name_or_path}; choose another --output"
            )
    else:
        from harness.evaluate import git_commit
        from tasks import logickor

        rundir.write_manifest(
            spec.output,
            rundir.Manifest(
                fusebench_version=__version__,
                git_commit=git_commit(),
                model=model,
                backend=rundir.BackendInfo(
                    name=f"openai ({spec.serve or 'external server'})",
                    args={"max_tokens": spec.max_tokens, "stop": spec.stop},
                ),
                requested_tasks=["logickor"],
                tasks=[
                    rundir.TaskEntry(
                        name="logickor",
                        version=logickor.VERSION,
                        benchmark="LogicKor",
                        source=logickor.source_description(),
                        split="test",
                        metric="judge score 0-10",
                    )
                ],
                num_fewshot=[],
                seeds={},
                limit=None,
                started_at=rundir.now(),
            ),
        )
    record.setdefault("started_at", rundir.now())
    record.update(
        {"fusebench_version": __version__, "settings": settings, "server": spec.serve or "external"}
    )
    record.setdefault("strategies", {})
    write_json_atomic(record_path, record)
    return record


def _read_part(path: Path, ids: set) -> dict[Any, dict]:
    """Finished questions; a torn last line (killed mid-write) is dropped and redone."""
    return {row["id"]: row for row in read_journal(path) if row.get("id") in ids}


def cut_at_stop(text: str, stop: list[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return (text[: min(cuts)] if cuts else text).strip()


class _Chat:
    def __init__(self, base_url: str, model: str, spec: GenerateSpec) -> None:
        import openai

        # The openai client's own retries (exponential backoff, Retry-After) suffice for a
        # model server; judging needs more control (see judges.client).
        self._client = openai.OpenAI(
            base_url=base_url, api_key=spec.api_key or "none", timeout=spec.timeout, max_retries=3
        )
        self.model, self.spec = model, spec
        # An error body may echo the key back (a 401 'Incorrect API key provided: sk-...').
        self.redact = Redactor(spec.api_key, base_url)

    def __call__(self, messages: list[dict[str, str]]) -> str:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=0.0,  # type: ignore[arg-type]
                max_tokens=self.spec.max_tokens,
                stop=self.spec.stop or None,
            )
        except openai.APIStatusError as err:
            raise HarnessError(
                f"model server refused a request (HTTP {err.status_code}): "
                f"{' '.join(self.redact(str(err)).split())[:300]}"
            ) from None
        except openai.APIConnectionError as err:
            raise HarnessError(self.redact(f"model server unreachable ({err})")) from None
        text = response.choices[0].message.content if response.choices else None
        return cut_at_stop(text or "", self.spec.stop)

    def close(self) -> None:
        self._client.close()


def answer(
    chat: Callable[[list[dict[str, str]]], str], strategy: list[dict[str, str]], question: dict
) -> dict:
    first, second = question["questions"][:2]
    turn1 = [*strategy, {"role": "user", "content": first}]
    out1 = chat(turn1)
    out2 = chat(
        [*turn1, {"role": "assistant", "content": out1}, {"role": "user", "content": second}]
    )
    return {
        "id": question["id"],
        "category": question["category"],
        "questions": question["questions"],
        "outputs": [out1, out2],
        "references": question["references"],
    }


@contextlib.contextmanager
def _endpoint(spec: GenerateSpec, log: Path) -> Iterator[tuple[str, str]]:
    if spec.serve is not None:
        from harness.serve import serve

        with serve(
            spec.model,
            spec.serve,
            chat_template=spec.chat_template,
            trust_remote_code=spec.trust_remote_code,
            device=spec.device,
            log=log,
        ) as served:
            yield served.base_url, served.model
    else:
        assert spec.base_url is not None
        yield spec.base_url, spec.model


def run_generate(spec: GenerateSpec, console: Console | None = None) -> dict[str, dict]:
    """Generate every strategy; returns per strategy how many questions were generated now
    and how many were already done."""
    from tasks.logickor import load_questions, load_templates

    console = console or Console()
    if (spec.base_url is None) == (spec.serve is None):
        raise HarnessError("give either --base-url URL or --serve transformers|vllm")
    questions, templates = load_questions(), load_templates()
    unknown = [s for s in spec.strategies if s not in templates.strategies]
    if unknown:
        raise HarnessError(
            f"--strategies: unknown {', '.join(unknown)} (known: {', '.join(templates.strategies)})"
        )
    template_sha = check_chat_template(spec)
    model = _model_info(spec.model)
    record = _open_run(spec, model, _settings(spec, model, template_sha))
    out = spec.output / LOGICKOR_DIR
    ids = {q["id"] for q in questions}
    todo: dict[str, list[dict]] = {}
    done: dict[str, dict[Any, dict]] = {}
    result: dict[str, dict] = {}
    for strategy in spec.strategies:
        final = out / f"{strategy}.jsonl"
        if final.is_file() and record["strategies"].get(strategy, {}).get("status") == "complete":
            result[strategy] = {"generated": 0, "already_done": len(questions)}
            continue
        done[strategy] = _read_part(part_path(final), ids)
        todo[strategy] = [q for q in questions if q["id"] not in done[strategy]]
    if not todo:
        return result
    lock = threading.Lock()
    with _endpoint(spec, out / "server.log") as (base_url, served_model):
        chat = _Chat(base_url, served_model, spec)
        progress = Progress(
            TextColumn("generating {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=spec.quiet,
        )
        try:
            with progress:
                for strategy, remaining in todo.items():
                    bar = progress.add_task(
                        strategy, total=len(questions), completed=len(done[strategy])
                    )
                    _run_strategy(
                        spec,
                        chat,
                        templates.strategies[strategy],
                        remaining,
                        out / f"{strategy}.jsonl",
                        done[strategy],
                        lock,
                        lambda bar=bar: progress.advance(bar),
                    )
                    final = out / f"{strategy}.jsonl"
                    write_jsonl_atomic(final, [done[strategy][q["id"]] for q in questions])
                    part_path(final).unlink(missing_ok=True)
                    record["strategies"][strategy] = {
                        "status": "complete",
                        "questions": len(questions),
                        "finished_at": rundir.now(),
                    }
                    write_json_atomic(out / RECORD, record)
                    result[strategy] = {
                        "generated": len(remaining),
                        "already_done": len(questions) - len(remaining),
                    }
        except KeyboardInterrupt:
            finished = {s: len(d) for s, d in done.items()}
            raise Interrupted(
                f"interrupted; finished questions kept ({finished}); rerun the "
                "same command to continue"
            ) from None
        finally:
            chat.close()
    return result


def _run_strategy(
    spec: GenerateSpec,
    chat: _Chat,
    strategy: list[dict[str, str]],
    remaining: list[dict],
    final: Path,
    done: dict,
    lock: threading.Lock,
    advance: Callable[[], None],
) -> None:
    part = part_path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=spec.concurrency) as pool:
        futures = [pool.submit(answer, chat, strategy, q) for q in remaining]
        try:
            for future in as_completed(futures):
                row = future.result()
                append_journal(part, row, lock)
                done[row["id"]] = row
                advance()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
