#!/usr/bin/env bash
# The main job on a built-in default (no downloads, CPU, minutes): DSVT-P on the built-in mini Waymo dataset.
#   The dataset (a ray-cast 64-beam LiDAR over 200 procedural street scenes, in the Waymo v2 parquet layout) is
#   generated and converted on first use (~2 min); DSVT trains a short schedule (MAIN_EPOCHS, default 3 epochs
#   = 240 iterations, ~4 min on 2 cores; the AP benchmark schedule is the config's 12 epochs), then the Waymo
#   AP/APH table is printed and BEV pictures with points, ground truth and predictions are written.
# MAIN_CONFIG picks another config: configs/centerpoint_voxel_waymo_mini.py (CenterPoint-Voxel on the same data)
#   or configs/e3dsnn_t_shapes.py (the spiking E3DSNN-T classifier on built-in shapes, with its energy report).
#   MAIN_EPOCHS= (empty) trains the config's own schedule (and its own lr; a short schedule peaks at MAIN_LR, 0.003).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${MAIN_CONFIG:-configs/dsvt_waymo_mini.py}
EPOCHS=${MAIN_EPOCHS-3}
NAME=$(basename "$CONFIG" .py)
WORK=work_dirs/main_${NAME}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
OPTS=()
if [ -n "$EPOCHS" ] && [ "$NAME" != "e3dsnn_t_shapes" ]; then
  # the short schedule warms up in ~1 epoch: a gentler peak lr (MAIN_LR) keeps the size regression stable there
  LR=${MAIN_LR:-0.003}
  OPTS=(--cfg-options "train_cfg.max_epochs=$EPOCHS" "train_cfg.val_interval=$EPOCHS" "param_scheduler.0.end=$EPOCHS"
        "optim_wrapper.optimizer.lr=$LR" "param_scheduler.0.eta_max=$LR")
fi
python tools/train.py "$CONFIG" --work-dir "$WORK" --seed 0 "${OPTS[@]}"
CKPT=$(cat "$WORK/last_checkpoint")
python tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK/test"
case "$NAME" in
  e3dsnn*) python tools/snn_energy.py "$CONFIG" "$CKPT" --out-dir "$WORK/energy"
           echo "main job done: $CKPT; energy table and picture in $WORK/energy/" ;;
  *)       python tools/visualize.py "$CONFIG" "$CKPT" --frames 0 1 2 --out-dir "$WORK/bev"
           echo "main job done: $CKPT; BEV pictures in $WORK/bev/" ;;
esac
