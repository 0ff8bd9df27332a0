#!/usr/bin/env bash
# The main job on a built-in default (no downloads): generate the mini Waymo dataset on first use, train a
# LiDAR detector on the CPU, evaluate it (Waymo AP/APH table) and draw BEV pictures with its predictions.
#   MAIN_CONFIG  config to run (default: CenterPoint-Voxel mini)      MAIN_EPOCHS  training epochs (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${MAIN_CONFIG:-configs/centerpoint_voxel_waymo_mini.py}
EPOCHS=${MAIN_EPOCHS:-40}
NAME=$(basename "$CONFIG" .py)
WORK=work_dirs/main_${NAME}
# one thread per process is fastest for these small models on a 2-core machine
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python tools/train.py "$CONFIG" --work-dir "$WORK" --seed 0 \
  --cfg-options train_cfg.max_epochs="$EPOCHS" train_cfg.val_interval="$EPOCHS" param_scheduler.0.end="$EPOCHS"
CKPT=$(cat "$WORK/last_checkpoint")
python tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK/test"
python tools/visualize.py "$CONFIG" "$CKPT" --frames 0 1 2 --out-dir "$WORK/bev"
echo "main job done: checkpoint $CKPT, BEV pictures in $WORK/bev/"
