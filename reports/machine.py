"""Which machine made a report: timings and thread-dependent results mean little without it.

Recorded beside the comparison (compare.json ``machine``, one line in Markdown and HTML): the
CPU model, its logical cores, the torch threads, and the torch and Python versions.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

_CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: Path = _CPUINFO) -> str:
    """The CPU's name: /proc/cpuinfo's ``model name`` on Linux, else what platform says."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def record(eval_threads: int | None = None) -> dict[str, Any]:
    """This machine, as the report records it. ``eval_threads``: the torch threads each
    evaluation ran with, where the caller split the cores between parallel evaluations."""
    import torch

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "cores_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "eval_threads": eval_threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def line(machine: dict[str, Any]) -> str:
    """One line for Markdown and HTML."""
    threads = f"torch threads {machine.get('torch_threads')}"
    if machine.get("eval_threads"):
        threads += f" ({machine['eval_threads']} per evaluation)"
    cores = f"{machine.get('cores')} cores"
    if machine.get("cores_usable") not in (None, machine.get("cores")):
        cores += f" ({machine['cores_usable']} usable)"
    gpu = f", GPU {machine['cuda']}" if machine.get("cuda") else ""
    return (
        f"Machine: {machine.get('cpu')}, {cores}, {threads}{gpu}; torch {machine.get('torch')}, "
        f"Python {machine.get('python')} ({machine.get('platform')})"
    )
