"""TransHuman on the built-in multi-view human dataset (20 procedurally clothed template subjects × 12 frames ×
24 cameras at 128 px, generated on first use into data/zju_synthetic_20, about a minute on one core), CPU-sized:
trained on 17 subjects (subject0–2 and subject6–19), evaluated on the **unseen** subject3, subject4 and subject5
from the authors' 3 reference cameras (0, 7, 15) at their 6 target cameras.

    nice -n 10 python tools/train_human.py configs/transhuman_human_mini.py
    python tools/render.py work_dirs/transhuman_human_mini/ckpt_latest.pt --cameras test
    python tools/render.py work_dirs/transhuman_human_mini/ckpt_latest.pt --cameras orbit --frame 0 3 6 9 --video orbit.mp4

Why 17 training people: a generalisable model must take each person's colours from the reference views (the
pixel-aligned features, raw RGB included, feed the colour head directly, as in the authors' FDI); with only 3
training people it can instead memorise their clothing and renders an unseen person in a training person's colours.
Every subject's shape, clothing cut and colours are drawn independently (``synthetic._subject``), so more people
means more varied clothing; subject3–5 are the same people as in the 6-subject dataset (each subject has its own
seed), so the test subjects did not change.

CPU-budget choices against the authors' settings (``configs/transhuman_zju.py``): images at 128 px (ratio 1),
TransHE 4 layers instead of 12 (same width 192 and 3 heads, same 300 tokens), heads 128 wide instead of 256,
256 rays × 24 samples per step instead of 1024 × 64, a 16-minute CPU-time budget (25 minutes of wall time at
most) instead of 3000 epochs; the image encoder starts from random weights unless ``model.encoder_weights`` names a
local resnet18 state dict.

``colour_aug=0.5``: half of the training steps permute the RGB channels of the reference views and of the target
rays alike, so colours must come from the reference views. Chosen on subject19, a training person held out of
training (16 people, 4 CPU-min each): 23.92 dB / 0.774 without, 24.47 / 0.820 with it. ``train_skip_far=0.1``
(training skips the samples evaluation skips) was tried the same way with it: 344 instead of 238 steps in the
budget, but 24.35 / 0.802, so it stays off; so do ``patch_size=8, lambda_dssim=0.2`` (four 8 × 8 patches per
step with a D-SSIM term): 21.29 / 0.618.

``lr=2.8e-3``, four times the authors' 7e-4 (their schedule: 10 % warm-up, cosine to 1e-6, here over the CPU
budget instead of 3000 epochs). Chosen the same way, with the colour augmentation: 7e-4 gave 24.47 / 0.820 (seed 0)
and 22.35 / 0.712 (seed 1), 1.4e-3 24.84 / 0.844, 2.8e-3 25.24 / 0.857 and 25.17 / 0.849 (seeds 0 and 1), 5.6e-3
diverged (16.33 / 0.537).

With these settings and the 16 CPU-minute budget (929 / 905 steps, seeds 0 / 1, 1 thread: ``num_threads=1``; 18.9
min wall for seed 1) the unseen subject3–5, frame 0, scored at the 21 non-reference cameras: TransHuman 25.34 dB /
0.866 and 25.44 / 0.869 against a per-scene NeRF fitted to the same 3 views for the same 16 CPU-minutes, 24.55 /
0.860 (``bench/transhuman_unseen_subjects.py``; docs/model_zoo.md).
"""
default_scope = "perception3d"
method = "transhuman"

data = dict(
    root="data/zju_synthetic_20",
    builtin=dict(n_subjects=20, motions=("walk", "wave", "squat_turn"), frames_per_motion=4, n_cameras=24,
                 image_size=128, seed=0),
    train_subjects=("subject0", "subject1", "subject2", "subject6", "subject7", "subject8", "subject9", "subject10",
                    "subject11", "subject12", "subject13", "subject14", "subject15", "subject16", "subject17",
                    "subject18", "subject19"),
    test_subjects=("subject3", "subject4", "subject5"),
    eval_frames=(0, 6),
    input_views=(0, 7, 15),
    target_views=(3, 5, 10, 12, 18, 20),
    num_input_views=3,
    ratio=1.0,
    allow_template=True,
)
model = dict(num_tokens=300, dim=192, depth=4, heads=3, knn=7, knn_freqs=10, knn_alpha=0.5, head_width=128,
             att_dim=128)
train = dict(max_steps=20_000, max_cpu_minutes=16.0, max_minutes=25.0, lr=2.8e-3, n_rays=256, n_samples=24,
             body_sample_ratio=0.5, eval_every=0, save_every=200, log_every=25, skip_far=0.1, colour_aug=0.5,
             num_threads=1)
