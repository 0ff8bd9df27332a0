#!/usr/bin/env bash
# The main job on a built-in default (no downloads, CPU, minutes): DSVT-P on the built-in mini Waymo dataset.
#   The dataset (a ray-cast 64-beam LiDAR over 200 procedural street scenes, in the Waymo v2 parquet layout) is
#   generated (one process per core) and converted on first use (~40 s); DSVT-P trains the config's own schedule
#   (the recipe whose AP the README reports), then tools/test.py prints the Waymo AP/APH table while
#   tools/visualize.py writes BEV pictures with points, ground truth and predictions. About 8 minutes on a 2-core
#   CPU.
# MAIN_SEED (default 0) is the training seed. MAIN_CONFIG picks another config:
#   configs/centerpoint_voxel_waymo_mini.py (CenterPoint-Voxel on the same data) or configs/e3dsnn_t_shapes.py
#   (the spiking E3DSNN-T classifier on built-in shapes, with its energy report).
#   MAIN_EPOCHS=N shortens/lengthens the schedule (the one-cycle lr follows it); empty = the config's.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${MAIN_CONFIG:-configs/dsvt_waymo_mini.py}
SEED=${MAIN_SEED:-0}
EPOCHS=${MAIN_EPOCHS:-}
NAME=$(basename "$CONFIG" .py)
WORK=work_dirs/main_${NAME}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
OPTS=()
if [ "$NAME" != "e3dsnn_t_shapes" ]; then
  # tools/test.py below evaluates the final weights: no validation pass inside training
  OPTS+=("train_cfg.val_begin=100000")
  if [ -n "$EPOCHS" ]; then
    OPTS+=("train_cfg.max_epochs=$EPOCHS" "param_scheduler.0.end=$EPOCHS")
  fi
fi
python tools/train.py "$CONFIG" --work-dir "$WORK" --seed "$SEED" ${OPTS[@]+--cfg-options "${OPTS[@]}"}
CKPT=$(cat "$WORK/last_checkpoint")
case "$NAME" in
  e3dsnn*) python tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK/test"
           python tools/snn_energy.py "$CONFIG" "$CKPT" --out-dir "$WORK/energy"
           echo "main job done: $CKPT; energy table and picture in $WORK/energy/" ;;
  *)       # the BEV pictures are drawn on one core while the test runs on the other; their log follows the table
           mkdir -p "$WORK/bev"
           OMP_NUM_THREADS=1 python tools/visualize.py "$CONFIG" "$CKPT" --frames 0 1 2 --out-dir "$WORK/bev" \
             > "$WORK/bev/visualize.log" 2>&1 &
           VIS=$!
           trap 'kill "$VIS" 2>/dev/null || true' EXIT
           TEST_THREADS=$(( OMP_NUM_THREADS > 1 ? OMP_NUM_THREADS - 1 : 1 ))
           OMP_NUM_THREADS=$TEST_THREADS python tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK/test"
           if ! wait "$VIS"; then cat "$WORK/bev/visualize.log" >&2; echo "main job: tools/visualize.py failed" >&2; exit 1; fi
           cat "$WORK/bev/visualize.log"
           echo "main job done: $CKPT; BEV pictures in $WORK/bev/" ;;
esac
