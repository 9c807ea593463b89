#!/usr/bin/env bash
# The checks a CUDA GPU needs, in one command of about 9 minutes (issue 9): one seed of bracket 1min
# for every architecture on the GPU (gru and lstm train and save on CUDA; accuracy, samples/s, GPU
# utilisation and the GPU's name go into bench/results/runs.csv beside the CPU rows), then the
# CUDA tests (tests/test_cuda.py: train, --resume, --init-from --lora, evaluate, predict, export,
# serve and a hyper.py study with --device cuda and auto). The bench rows and logs go to OUTDIR.
#   bash scripts/gpu_check.sh [OUTDIR]       # default gpu_check/
#   PYTHON=python3 bash scripts/gpu_check.sh  # a Python with a CUDA build of torch other than `python`
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check}
py=${PYTHON:-python}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ! "$py" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  echo "gpu_check: $py has no torch that sees a CUDA GPU here; nothing to check" >&2
  exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv" 2>&1 || true
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  | tee "$out/versions.txt"
"$py" -m bench --only bracket-1min --seeds 0 --device cuda 2>&1 | tee "$out/bench.log"
bench=${PIPESTATUS[0]}
cp bench/results/runs.csv bench/results/README.md "$out/" 2>/dev/null
parallel=()  # pytest-xdist, where it is installed: the CUDA tests in parallel processes
"$py" -c "import xdist" 2>/dev/null && parallel=(-n 6)
"$py" -m pytest -q "${parallel[@]}" tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
tests=${PIPESTATUS[0]}
echo "gpu_check: bench exit $bench, CUDA tests exit $tests; results in $out/"
exit $(( bench || tests ))
