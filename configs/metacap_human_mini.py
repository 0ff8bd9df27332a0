"""MetaCap on the built-in multi-view human dataset, on CPU (about 15 minutes wall on a 2-core machine shared with
other jobs, 4–5 minutes of CPU time at 1 thread).

    python tools/train_human.py configs/metacap_human_mini.py        # meta-learning, then 2-view fine-tuning
    python tools/render.py work_dirs/metacap_human_mini/ckpt_latest.pt --cameras orbit --frames 0 4 8 --video o.gif

Data: ``data/zju_synthetic`` (generated on first use, ZJU-MoCap layout): 6 subjects × 12 frames (walk, wave,
squat-turn) × 24 cameras at 128 × 128. Meta-learning over frames 0–9 of subjects 0–2; fine-tuning on the unseen
frame 11 of subject 0 (a squat-turn pose) from 2 opposite cameras, evaluated on 4 held-out cameras.

The authors' values: Reptile inner steps 24, inner Adam lr 0.01 (β 0.9/0.99, ε 1e-15), outer SGD lr 1.0; fine-tuning
Adam lr 0.01 decayed to 0.1×; 256 rays per step; losses Huber 10 / mask 0.1 / eikonal 0.1 / sparsity 0.01;
NeuS variance 0.3; geometry MLP 64 × 1 hidden → SDF + 13 features, texture MLP 64 × 2 hidden.
CPU-budget choices: 200 outer steps instead of 3000 (and the inner-lr warm-up over the first 3 outer steps instead
of 50: about the same 1/60 of the run); sparse voxel levels 8 / 4 / 2 cm with 2 features each instead of a 12-level hash
grid down to 2.7 mm; 1 cm ray steps instead of 1024 samples per ray; 300 fine-tuning steps instead of 3000.
The SDF starts as the distance to the box centre (``sphere_radius=0``), positive over the whole sampled shell:
instant-nsr-pl's radius 0.5 encloses the torso's shell, where NeuS's opacity carries no gradient to the SDF, and
the field then stays in a fog (s falling from 20 to about 9, the SDF negative everywhere; see
``perception3d/rendering/human/metacap/field.py``). Measured with ``bench/metacap_meta_vs_random.py
--random-steps 1500`` (1 thread, shared machine): meta-learning 200 × 24 steps in 3.4 CPU-min (8.4 min wall); on
2 views of the unseen frame the meta-learned start gives 17.6 dB / SSIM 0.745 at step 0 and 19.7 dB / 0.811
after 300 steps (11 CPU-s), its mesh 1.13 cm Chamfer from the ground-truth clothed mesh (the posed body model
itself: 1.51 cm); from the geometric start 2 views do not pin the surface: best 14.9 dB at step 150, 13.5 dB /
0.474 and 2.16 cm after 1500 steps. The authors' 3000 outer steps with up to 8192 rays per step are a GPU budget
(configs/metacap_human.py).
The procedural template stands in for SMPL (``data.allow_template``; set ``data.body_model`` to an SMPL file for
real captures).
"""
default_scope = "perception3d"
method = "metacap"

data = dict(
    root="data/zju_synthetic",
    synthetic=dict(n_subjects=6, motions=("walk", "wave", "squat_turn"), frames_per_motion=4, n_cameras=24,
                   image_size=128, seed=0),
    meta_sequences=("subject0", "subject1", "subject2"),
    meta_frames=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    test_sequence="subject0",
    test_frame=11,
    input_views=(0, 12, 6, 18, 3, 15, 9, 21),
    eval_views=(4, 10, 16, 22),
    body_model=None,
    allow_template=True,
)
model = dict(voxel_sizes=(0.08, 0.04, 0.02), features=2, hidden=64, feature_dim=13, sphere_radius=0.0,
             variance_init=0.3, step=0.01, threshold=0.05, cos_anneal_end=20000)
loss = dict(rgb_huber=10.0, mask=0.1, eikonal=0.1, sparsity=0.01, sparsity_scale=1.0)
meta = dict(outer_steps=200, inner_steps=24, inner_lr=0.01, outer_lr=1.0, warmup_steps_inner=3, rays=256,
            save_every=25)
finetune = dict(views=(2,), steps=300, lr=0.01, final_lr_factor=0.1, rays=256,
                eval_steps=(0, 10, 20, 40, 60, 100, 150, 200), occlusion=False, mesh_voxel=0.01,
                chamfer_points=20000, init="meta")
