"""LogicKor generation: each question's two turns against an OpenAI-compatible server.

Turn 1 sends the strategy's messages plus question 1; turn 2 adds the model's own first
answer and question 2 (as LogicKor's generators do). Greedy (temperature 0), ``max_tokens``,
stop sequences (LogicKor's list by default, ``harness.specs.LOGICKOR_VERSION``; text from a
stop sequence on is cut, as vLLM does); answers are stripped like LogicKor's. A vLLM server
also gets every other sampling field LogicKor leaves at vLLM's default (``request_fields``),
so a model's generation_config.json cannot change them.

Length: where the server reports the model's context (vLLM's ``/v1/models`` ``max_model_len``),
each request asks for at most what is left of it after the prompt (counted by vLLM's
``/tokenize``), as LogicKor's ``max_tokens=model_len`` does; a prompt that fills the context,
or an HTTP 400 for the length, fails that question only: it is written with its ``error``
(the reason) and empty answers from the failed turn on, listed in ``generation.json``, and
the run goes on. Nothing is cut from a prompt.

Output: ``<run>/logickor/<strategy>.jsonl`` in LogicKor's generated format (id, category,
questions, outputs, references). Each finished question is appended to a hidden part file
(fsync), so an interrupted run continues where it stopped without repeating a finished
question; the final file is written atomically in question order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
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


class QuestionFailed(Exception):
    """A request the server cannot answer for its length: that question fails, not the run."""


# vLLM's 400 for prompt + max_tokens over max_model_len ("This model's maximum context length
# is N tokens. However, you requested ..."), and other servers' wording of the same.
_LENGTH_400 = re.compile(r"context length|max_model_len|maximum context|too long", re.IGNORECASE)


def request_fields(server: str | None, max_tokens: int, stop: list[str]) -> dict[str, Any]:
    """The sampling fields of each request. To a vLLM server fusebench starts: every field
    LogicKor leaves at vLLM's default, explicitly (``top_p``, penalties, ``top_k``,
    ``skip_special_tokens``), beside ``--generation-config vllm``; other servers get the
    OpenAI fields only (``transformers serve`` refuses unknown ones with a 422)."""
    fields: dict[str, Any] = {"temperature": 0.0, "max_tokens": max_tokens, "stop": stop or None}
    if server == "vllm":
        fields.update(
            top_p=1.0,
            frequency_penalty=0.0,
            presence_penalty=0.0,
            extra_body={
                "top_k": -1,
                "min_p": 0.0,
                "repetition_penalty": 1.0,
                "skip_special_tokens": True,
            },
        )
    return fields


def capped_max_tokens(requested: int, model_len: int | None, prompt_tokens: int | None) -> int:
    """Tokens to ask for: ``requested``, never past the model's context after the prompt."""
    if model_len is None:
        return requested
    room = model_len - (prompt_tokens or 0)
    if room < 1:
        raise QuestionFailed(
            f"the prompt's {prompt_tokens} tokens fill the model's {model_len}-token context"
        )
    return min(requested, room)


class _Chat:
    def __init__(
        self, base_url: str, model: str, spec: GenerateSpec, api_key: str | None = None
    ) -> None:
        import openai

        key = api_key if api_key is not None else spec.api_key
        # The openai client's own retries (exponential backoff, Retry-After) suffice for a
        # model server; judging needs more control (see judges.client).
        self._client = openai.OpenAI(
            base_url=base_url, api_key=key or "none", timeout=spec.timeout, max_retries=3
        )
        self.model, self.spec, self.key = model, spec, key
        self.root = base_url.rstrip("/").removesuffix("/v1")
        # An error body may echo the key back (a 401 'Incorrect API key provided: sk-...').
        self.redact = Redactor(key, base_url)
        self.model_len = self._served_model_len()

    def _served_model_len(self) -> int | None:
        """The served model's context as ``/v1/models`` reports it (vLLM: ``max_model_len``);
        None where the server does not say (``transformers serve``, most APIs)."""
        import openai

        try:
            cards = self._client.with_options(max_retries=0).models.list().data
        except openai.OpenAIError:
            return None
        for card in cards:
            if card.id == self.model:
                value = (card.model_extra or {}).get("max_model_len")
                return int(value) if isinstance(value, int) and value > 0 else None
        return None

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> int | None:
        """The prompt's length in the model's tokens, chat template applied, from vLLM's
        ``/tokenize``; None where the server has no such endpoint (the 400 then decides)."""
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        body = {"model": self.model, "messages": messages, "add_generation_prompt": True}
        request = urllib.request.Request(
            f"{self.root}/tokenize", data=json.dumps(body).encode("utf-8"), headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.spec.timeout) as response:
                count = json.loads(response.read()).get("count")
        except (urllib.error.URLError, OSError, ValueError, AttributeError):
            return None
        return count if isinstance(count, int) else None

    def __call__(self, messages: list[dict[str, str]]) -> str:
        import openai

        max_tokens = self.spec.max_tokens
        if self.model_len is not None:
            max_tokens = capped_max_tokens(
                max_tokens, self.model_len, self._prompt_tokens(messages)
            )
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                **request_fields(self.spec.serve, max_tokens, self.spec.stop),
            )
        except openai.APIStatusError as err:
            message = " ".join(self.redact(str(err)).split())[:300]
            if err.status_code == 400 and _LENGTH_400.search(message):
                raise QuestionFailed(f"HTTP 400: {message}") from None
            raise HarnessError(
                f"model server refused a request (HTTP {err.status_code}): {message}"
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
    outputs, error, turn = ["", ""], None, 1
    try:
        outputs[0] = chat(turn1)
        turn = 2
        turn2 = [
            *turn1,
            {"role": "assistant", "content": outputs[0]},
            {"role": "user", "content": second},
        ]
        outputs[1] = chat(turn2)
    except QuestionFailed as failed:
        error = f"turn {turn}: {failed}"
    row = {
        "id": question["id"],
        "category": question["category"],
        "questions": question["questions"],
        "outputs": outputs,
        "references": question["references"],
    }
    if error is not None:
        row["error"] = error
    return row


def vllm_options(spec: GenerateSpec) -> Any:
    """The ``vllm serve`` pass-through options; refused with any other server (one line)."""
    from harness.serve import VLLMOptions

    options = VLLMOptions(
        tensor_parallel_size=spec.tensor_parallel_size,
        max_model_len=spec.max_model_len,
        dtype=spec.dtype,
        gpu_memory_utilization=spec.gpu_memory_utilization,
    )
    if options.given() and spec.serve != "vllm":
        raise HarnessError(
            f"{', '.join(options.given())}: options of --serve vllm (the server fusebench "
            "starts); give them to your own server instead"
        )
    return options


def served_key(spec: GenerateSpec, environ: dict[str, str]) -> str | None:
    """The one key of a vLLM server fusebench starts and of its client: the --api-key-env
    variable's, else an inherited VLLM_API_KEY (which would turn the server's auth on)."""
    return spec.api_key or environ.get("VLLM_API_KEY") or None


@contextlib.contextmanager
def _endpoint(spec: GenerateSpec, log: Path) -> Iterator[tuple[str, str, str | None]]:
    """(base URL, model name, API key) of the server to ask."""
    if spec.serve is not None:
        import os

        from harness.serve import serve

        with serve(
            spec.model,
            spec.serve,
            chat_template=spec.chat_template,
            trust_remote_code=spec.trust_remote_code,
            device=spec.device,
            log=log,
            startup_timeout=spec.startup_timeout,
            vllm=vllm_options(spec),
            api_key=served_key(spec, dict(os.environ)) if spec.serve == "vllm" else None,
        ) as served:
            yield served.base_url, served.model, served.api_key or spec.api_key
    else:
        assert spec.base_url is not None
        yield spec.base_url, spec.model, spec.api_key


def run_generate(spec: GenerateSpec, console: Console | None = None) -> dict[str, dict]:
    """Generate every strategy; returns per strategy how many questions were generated now
    and how many were already done."""
    from tasks.logickor import load_questions, load_templates

    console = console or Console()
    if (spec.base_url is None) == (spec.serve is None):
        raise HarnessError("give either --base-url URL or --serve transformers|vllm")
    vllm_options(spec)  # vllm-only options without --serve vllm: refused before anything
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
    with _endpoint(spec, out / "server.log") as (base_url, served_model, key):
        chat = _Chat(base_url, served_model, spec, key)
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
                    failed = {
                        str(q["id"]): done[strategy][q["id"]]["error"]
                        for q in questions
                        if "error" in done[strategy][q["id"]]
                    }
                    record["strategies"][strategy] = {
                        "status": "complete",
                        "questions": len(questions),
                        "failed": failed,
                        "finished_at": rundir.now(),
                    }
                    write_json_atomic(out / RECORD, record)
                    result[strategy] = {
                        "generated": len(remaining),
                        "already_done": len(questions) - len(remaining),
                        "failed": len(failed),
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
