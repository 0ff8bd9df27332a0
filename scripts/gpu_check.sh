#!/usr/bin/env bash
# GPU readiness check, one command on a CUDA machine (≤ 8 minutes in all; each step gets what is left):
#   1. installs the CUDA extras, spconv-cu120 and gsplat (torch stays the installed one: a pip constraint pins it;
#      GPU_CHECK_WHEELS=DIR installs from local wheels only, for machines without network);
#   2. runs every CUDA parity test: sparse conv vs CPU and vs spconv (forward and backward), rasterize vs CPU and
#      vs gsplat, IoU / NMS / points-in-boxes on CUDA vs CPU, AMP, a 2-process DDP step (nccl on 2 GPUs, gloo over
#      CUDA tensors on 1);
#   3. runs the GPU benchmarks: DSVT-P latency (bench/dsvt.py, beside the paper's 67 ms PyTorch figure), sparse
#      conv vs spconv and rasterize vs gsplat (bench/gpu_check.py);
#   4. writes ONE JSON (GPU_CHECK_DIR, default work_dirs/gpu_check/gpu_check.json) with every step's exit code
#      and time, the test outcomes and the benchmark figures; the logs of each step lie beside it.
# Without a CUDA GPU it says so and exits 0. Exit code: 0 when every step and test passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python}
DIR=${GPU_CHECK_DIR:-work_dirs/gpu_check}
BUDGET=${GPU_CHECK_BUDGET_S:-480}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  info=$("$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}")' 2>/dev/null \
         || echo "torch not importable")
  echo "gpu_check: no CUDA GPU visible to torch ($info); nothing to check on this machine."
  exit 0
fi

mkdir -p "$DIR"
START=$(date +%s)
: > "$DIR/steps.tsv"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# step NAME LIMIT_S CMD...: run CMD with at most LIMIT_S seconds (and never past the budget, 15 s kept for the
# report); log to $DIR/NAME.log; append "NAME<TAB>rc<TAB>seconds<TAB>note" to steps.tsv (rc 124: timed out).
step() {
  local name=$1 limit=$2 left t0 rc note=""
  shift 2
  left=$(( START + BUDGET - 15 - $(date +%s) ))
  if [ "$left" -lt 10 ]; then
    printf '%s\t%s\t%s\t%s\n' "$name" 124 0 "not run: the ${BUDGET} s budget was used up" >> "$DIR/steps.tsv"
    echo "gpu_check: $name not run (out of time)"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  t0=$(date +%s)
  timeout "$limit" "$@" > "$DIR/$name.log" 2>&1
  rc=$?
  [ "$rc" = 124 ] && note="timed out after ${limit} s"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$note" >> "$DIR/steps.tsv"
  echo "gpu_check: $name exit $rc in $(( $(date +%s) - t0 )) s ${note:+($note) }- log $DIR/$name.log"
}

# gsplat's JIT build: only this GPU's architecture, all cores
ARCH=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$ARCH}
MAX_JOBS=${MAX_JOBS:-$(nproc)}
export MAX_JOBS
TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')
echo "torch==${TORCH_VERSION}" > "$DIR/constraints.txt"
PIP=("$PY" -m pip install -q --disable-pip-version-check -c "$DIR/constraints.txt")
if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
  PIP+=(--no-index --find-links "$GPU_CHECK_WHEELS")
fi
step install_extras 150 "${PIP[@]}" spconv-cu120 "gsplat==1.5.3"
# gsplat compiles its CUDA kernels on first use (needs nvcc): do it once here, so the tests time the tests
step gsplat_build 150 "$PY" -c 'import torch, gsplat
from gsplat.cuda._backend import _C
assert _C is not None, "gsplat CUDA extension did not build (is nvcc on PATH?)"'

step cuda_tests 200 "$PY" -m pytest -q -rs -p no:cacheprovider --junitxml "$DIR/tests.xml" \
  tests/test_gpu_sparse.py tests/test_gpu_ops.py tests/test_gpu_rasterize.py tests/test_gpu_amp.py \
  tests/test_gpu_ddp.py "tests/test_ops_iou.py::test_iou_cuda_matches_cpu"

step bench_dsvt 90 "$PY" bench/dsvt.py --device cuda --repeat 10 --out "$DIR/dsvt.json"
step bench_sparse_conv 60 "$PY" bench/gpu_check.py sparse-conv --out "$DIR/sparse_conv_cuda.json"
step bench_rasterize 60 "$PY" bench/gpu_check.py rasterize --out "$DIR/rasterize_cuda.json"

"$PY" bench/gpu_check.py report --dir "$DIR" --out "$DIR/gpu_check.json"
