"""Start an OpenAI-compatible server for one model, wait until it answers, always stop it.

What ``transformers serve`` (transformers 5.23, read from its sources in
``transformers/cli/serving/``) does and how we use it:

- ``transformers serve [FORCE_MODEL] --host --port --device`` is a FastAPI/uvicorn app. With
  FORCE_MODEL it preloads that model and serves only it: a request naming another model is a
  400, so we send ``model`` = exactly the string we started it with. Without it, models load
  per request by the ``model`` field (a Hub id or a local path). Local paths work; the name is
  canonicalised to ``<path>@main`` (so a path containing ``@`` cannot be served).
- ``GET /health`` answers ``{"status": "ok"}`` once uvicorn is up (200); ``/v1/models`` scans
  the Hub cache and fails without one, so it is no health check.
- ``POST /v1/chat/completions`` renders the messages with the tokenizer's chat template
  (``apply_chat_template(..., add_generation_prompt=True)``), so the model's own template is
  honoured; a model without one fails there. There is no option to pass another template, so
  ``--chat-template FILE`` is applied by serving a folder of links to the model's files with
  ``chat_template.jinja`` replaced. ``temperature: 0`` sets ``do_sample=False`` (greedy),
  ``max_tokens`` sets ``max_new_tokens`` and ``stop`` becomes ``stop_strings``; ``usage``
  carries token counts. Unknown request fields are a 422.

``vllm serve MODEL --host --port --served-model-name MODEL --generation-config vllm`` is the
GPU path, with the same ``/health`` and chat endpoint, plus ``--tensor-parallel-size``,
``--max-model-len``, ``--dtype``, ``--gpu-memory-utilization`` and ``--chat-template`` when
given. ``--generation-config vllm``: vLLM's own sampling defaults, not the model's
generation_config.json (``vllm serve`` defaults to ``auto``, which would fill fields a request
leaves unset, such as a repetition penalty, from the model's file). Its API key is the
``VLLM_API_KEY`` of the server's environment: ``child_env`` sets it to the one key the client
sends, or removes it. ``/v1/models`` reports each model's ``max_model_len``. **Untested on the
development machine (no GPU)**: the command line is built and tested here, the server is run
by ``scripts/gpu_smoke.sh``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fusion.launch import parent_death_signal
from harness.errors import HarnessError
from harness.specs import Server

SERVERS = tuple(server.value for server in Server)


@dataclass(frozen=True)
class Served:
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the name requests must use
    api_key: str | None = None  # the key the server checks (vllm), None: no auth


@dataclass(frozen=True)
class VLLMOptions:
    """``vllm serve`` engine arguments fusebench passes through (None: vLLM's default)."""

    tensor_parallel_size: int | None = None
    max_model_len: int | None = None
    dtype: str | None = None
    gpu_memory_utilization: float | None = None

    def argv(self) -> list[str]:
        out: list[str] = []
        for flag, value in (
            ("--tensor-parallel-size", self.tensor_parallel_size),
            ("--max-model-len", self.max_model_len),
            ("--dtype", self.dtype),
            ("--gpu-memory-utilization", self.gpu_memory_utilization),
        ):
            if value is not None:
                out += [flag, str(value)]
        return out

    def given(self) -> list[str]:
        """The options set, as the CLI names them (they apply to --serve vllm only)."""
        return [flag for flag in self.argv() if flag.startswith("--")]


def child_env(kind: str, api_key: str | None, environ: dict[str, str]) -> dict[str, str]:
    """The server's environment: for vllm, ``VLLM_API_KEY`` is exactly the client's key (an
    inherited one would turn auth on with a key the client does not send)."""
    env = dict(environ)
    if kind == "vllm":
        env.pop("VLLM_API_KEY", None)
        if api_key:
            env["VLLM_API_KEY"] = api_key
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _executable(name: str) -> str:
    """The console script next to this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise HarnessError(
            f"`{name}` is not installed (pip install 'fusebench[{'serve' if name == 'transformers' else 'vllm'}]')"
        )
    return found


def _with_template(model: str, template: Path, workdir: Path) -> str:
    """A folder of links to ``model``'s files with ``chat_template.jinja`` = ``template``
    (``transformers serve`` has no chat-template option)."""
    source = Path(model)
    if not source.is_dir():
        raise HarnessError(
            f"--chat-template with --serve transformers needs a local model "
            f"directory; {model} is not one"
        )
    folder = workdir / source.name
    folder.mkdir()
    for item in source.iterdir():
        if item.name in ("chat_template.jinja", "chat_template.json"):
            continue
        if item.name == "tokenizer_config.json":
            import json

            config = json.loads(item.read_text(encoding="utf-8"))
            config.pop("chat_template", None)
            (folder / item.name).write_text(json.dumps(config), encoding="utf-8")
            continue
        (folder / item.name).symlink_to(item.resolve())
    shutil.copyfile(template, folder / "chat_template.jinja")
    return str(folder)


def command(
    kind: str,
    model: str,
    port: int,
    chat_template: Path | None,
    trust_remote_code: bool,
    device: str,
    vllm: VLLMOptions | None = None,
) -> list[str]:
    if kind == "transformers":
        cmd = [
            _executable("transformers"),
            "serve",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            device,
            "--log-level",
            "warning",
        ]
    elif kind == "vllm":  # GPU path, untested here
        cmd = [
            _executable("vllm"),
            "serve",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--served-model-name",
            model,
            "--generation-config",
            "vllm",
            *(vllm or VLLMOptions()).argv(),
        ]
        if chat_template is not None:
            cmd += ["--chat-template", str(chat_template)]
    else:
        raise HarnessError(f"--serve {kind!r}: expected one of {', '.join(SERVERS)}")
    if trust_remote_code:
        cmd.append("--trust-remote-code")
    return cmd


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


@contextlib.contextmanager
def serve(
    model: str,
    kind: str = "transformers",
    *,
    chat_template: Path | None = None,
    trust_remote_code: bool = False,
    device: str = "cpu",
    log: Path | None = None,
    startup_timeout: float = 600.0,
    vllm: VLLMOptions | None = None,
    api_key: str | None = None,
) -> Iterator[Served]:
    """Run the server for the duration of the ``with`` block. It is stopped on every exit:
    normal, an exception, Ctrl-C, or SIGTERM (which the CLI turns into KeyboardInterrupt)."""
    with tempfile.TemporaryDirectory(prefix="fusebench-serve-") as workdir:
        served_model = model
        if chat_template is not None and kind == "transformers":
            served_model = _with_template(model, chat_template, Path(workdir))
        port = free_port()
        log_path = log or Path(workdir) / "server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = command(kind, served_model, port, chat_template, trust_remote_code, device, vllm)
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                cmd,
                env=child_env(kind, api_key, dict(os.environ)),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # Killed with SIGKILL, this process cannot stop the server: the kernel tells it.
                preexec_fn=parent_death_signal(),
            )
        try:
            _wait_healthy(process, port, startup_timeout, log_path, kind)
            yield Served(
                f"http://127.0.0.1:{port}/v1", served_model, api_key if kind == "vllm" else None
            )
        finally:
            _stop(process)


def _wait_healthy(
    process: subprocess.Popen, port: int, timeout: float, log: Path, kind: str
) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HarnessError(
                f"{kind} serve exited with code {process.returncode} before "
                f"answering ({log}: {_tail(log)})"
            )
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise HarnessError(
        f"{kind} serve did not answer {url} within {timeout:.0f}s ({log}); a first start "
        "downloads and compiles: raise --startup-timeout"
    )
