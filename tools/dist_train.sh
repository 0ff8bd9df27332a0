#!/usr/bin/env bash
# Multi-process training with torchrun: tools/dist_train.sh CONFIG NUM_PROCS [train.py args ...]
# On a CPU-only machine the processes talk over gloo (perception3d.engine.Det3DRunner sets this up).
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
PORT=${PORT:-29500}
cd "$(dirname "$0")/.."
exec python -m torch.distributed.run --nproc_per_node="$NPROC" --master_port="$PORT" \
    tools/train.py "$CONFIG" --launcher pytorch "$@"
