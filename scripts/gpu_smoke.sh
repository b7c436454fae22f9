#!/usr/bin/env bash
# The vLLM paths on a CUDA GPU, in one go and at most 10 minutes: vllm imports; extraction
# parity of the vllm backend with the hf backend (k=21, fp32, within 1e-3) and an over-long
# max_length refused in one line; `fusebench eval --backend vllm` against `--backend hf`;
# `fusebench generate --serve vllm --max-tokens 8` answering and leaving no process or GPU
# memory behind. One line per check (pytest -v). Run it from the environment that has vllm
# and fusebench installed (README, vLLM), with FUSEBENCH_DATA_DIR set:
#   bash scripts/gpu_smoke.sh            # or PYTHON=/path/to/venv/bin/python bash ...
# Never run on the development machine (no GPU). The same checks are `pytest -m gpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUSEBENCH_GPU_SMOKE=1 # nothing skips: no GPU or no vllm fails
exec timeout 600 "${PYTHON:-python}" -m pytest -p no:cacheprovider -m gpu -v --tb=line --no-header \
    -o addopts="" tests/gpu/test_smoke.py "$@"
