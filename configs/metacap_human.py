"""MetaCap at the authors' resolution, for GPU users with a real capture (ZJU-MoCap layout) and the SMPL model.

    python tools/train_human.py configs/metacap_human.py --cfg-options data.root=data/zju_mocap

Values as the authors' configs (``configs/s2/metalearning/*.yaml``, ``configs/s2/finetuning/*-two.yaml`` of
sunshinnnn/metacap): 3000 Reptile outer steps × 24 inner Adam steps (lr 0.01, β 0.9/0.99, ε 1e-15; inner-lr warm-up
over the first 50 outer steps), outer SGD lr 1.0; fine-tuning 3000 steps, Adam lr 0.01 decayed to 0.1×; 256 rays per
step; SMPL occupancy threshold 7.5 cm; losses Huber 10 / mask 0.1 / eikonal 0.1 / sparsity 0.01. The sparse voxel
encoding goes down to 5 mm (the authors' 12-level hash grid reaches 2.7 mm); rays step 5 mm.
The SDF starts at sphere radius 0, not the authors' 0.5 (inherited from the mini config, which says why).
The sequence names, frames and cameras below are ZJU-MoCap's CoreView_313 (21 cameras, every 5th frame for the
meta-learning tasks, frame 300 unseen); the SMPL file is yours (https://smpl.is.tue.mpg.de, not downloaded).
"""
_base_ = ["./metacap_human_mini.py"]

data = dict(
    root="data/zju_mocap",
    synthetic=None,
    meta_sequences=("CoreView_313",),
    meta_frames=tuple(range(0, 300, 5)),
    test_sequence="CoreView_313",
    test_frame=300,
    input_views=(0, 10, 5, 15, 2, 12, 7, 17),
    eval_views=(3, 8, 13, 18),
    body_model="data/smpl/SMPL_NEUTRAL.pkl",
    allow_template=False,
)
model = dict(voxel_sizes=(0.08, 0.04, 0.02, 0.01, 0.005), features=2, step=0.005, threshold=0.075)
meta = dict(outer_steps=3000, warmup_steps_inner=50, save_every=200)
finetune = dict(views=(1, 2, 4, 8), steps=3000, eval_steps=(0, 100, 300, 1000, 2000), mesh_voxel=0.005)
