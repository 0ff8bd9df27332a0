#!/usr/bin/env bash
# The main job on a built-in default (no downloads, CPU, minutes):
#   generate the built-in synthetic shape dataset (ModelNet40 layout) on first use, train the spiking sparse-conv
#   network E3DSNN-T on it, print the test accuracy, and write its energy report (table + energy.png).
# MAIN_CONFIG=configs/centerpoint_voxel_waymo_mini.py (or dsvt_waymo_mini.py) runs a LiDAR detector instead:
#   train on the built-in mini Waymo dataset, print the Waymo AP/APH table, write BEV pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${MAIN_CONFIG:-configs/e3dsnn_t_shapes.py}
NAME=$(basename "$CONFIG" .py)
WORK=work_dirs/main_${NAME}
# one thread per process is fastest for these small sparse models on a 2-core machine
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python tools/train.py "$CONFIG" --work-dir "$WORK" --seed 0
CKPT=$(cat "$WORK/last_checkpoint")
python tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK/test"
case "$NAME" in
  e3dsnn*) python tools/snn_energy.py "$CONFIG" "$CKPT" --out-dir "$WORK/energy"
           echo "main job done: $CKPT; energy table and picture in $WORK/energy/" ;;
  *)       python tools/visualize.py "$CONFIG" "$CKPT" --frames 0 1 2 --out-dir "$WORK/bev"
           echo "main job done: $CKPT; BEV pictures in $WORK/bev/" ;;
esac
