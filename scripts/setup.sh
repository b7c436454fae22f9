#!/usr/bin/env bash
# Create .venv and install fusebench with its extras.
#
# torch is installed FIRST and on its own: with no torch present, a resolver asked for
# transformers/deepspeed/lm-eval takes the newest torch build with several GB of CUDA
# packages. Here `torch==2.13.0` resolves to the CPU wheel on disk; on a GPU machine pip
# picks that machine's own build (set FUSEBENCH_TORCH_SPEC to choose another, e.g. a CUDA
# index: FUSEBENCH_TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${FUSEBENCH_VENV:-.venv}"
EXTRAS="${FUSEBENCH_EXTRAS:-dev,serve,merge}"
TORCH_SPEC="${FUSEBENCH_TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet $TORCH_SPEC
# compat mode puts the checkout on sys.path: the package has several top-level packages
# (harness, fusion, tasks, judges, reports), which the default editable finder
# handles poorly.
# The merge extra (mergekit==0.1.5) asks for torch>=2.0 and transformers>=5,<6: the torch
# installed above satisfies it and stays; mergekit adds immutables, peft, sentencepiece and
# protobuf only.
"$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]" --config-settings editable_mode=compat
"$VENV/bin/python" -c "import torch, transformers, lm_eval, deepspeed; print('fusebench environment ready: torch', torch.__version__)"
# DeepSpeed compiles its CPU communication op on first use; built here once, under a timeout,
# so that no training run pays for the build or is killed in the middle of it (a killed build
# leaves a lock that fusion/train/extensions.py clears). Not fatal: a first run builds it.
timeout 900 "$VENV/bin/python" -m fusion.train.extensions ||
  echo "note: DeepSpeed's comm op was not built now; the first training run builds it"
