"""TransHuman with the authors' settings (pansanity666/TransHuman ``configs/default.yaml``), for GPU users on
ZJU-MoCap: put the sequences under data/zju_mocap/CoreView_* and the SMPL model at data/smpl/SMPL_NEUTRAL.pkl.
Training subjects and the unseen test subjects follow the authors' (Neural Human Performer's) split; reference
cameras 0, 7, 15; target cameras 3, 5, 10, 12, 18, 20; images at half resolution (512²); 300 tokens, TransHE
ViT-tiny (192 wide, 3 heads, 12 layers), DPaRF K = 7, 1024 rays × 64 samples, Adam 7e-4 with cosine decay.

    python tools/train_human.py configs/transhuman_zju.py

Not reproduced: the LPIPS-VGG loss term (0.1; no pretrained VGG offline; their patch sampling exists as
``train.patch_size``, with ``train.lambda_dssim`` as a weight-free structural term), colour jitter and the random
rotation augmentation of the SMPL coordinates.
"""
default_scope = "perception3d"
method = "transhuman"

data = dict(
    root="data/zju_mocap",
    train_subjects=("CoreView_313", "CoreView_315", "CoreView_377", "CoreView_386", "CoreView_390",
                    "CoreView_392", "CoreView_396"),
    test_subjects=("CoreView_387", "CoreView_393", "CoreView_394"),
    input_views=(0, 7, 15),
    target_views=(3, 5, 10, 12, 18, 20),
    num_input_views=3,
    ratio=0.5,
    body_model="data/smpl/SMPL_NEUTRAL.pkl",
    allow_template=False,
    box_pad=(0.0, 0.0, 0.05),
)
model = dict(num_tokens=300, dim=192, depth=12, heads=3, knn=7, knn_freqs=10, knn_alpha=0.5, head_width=256,
             att_dim=128, encoder_weights=None)
train = dict(max_steps=1_500_000, lr=7e-4, end_lr=1e-6, warmup_frac=0.1, n_rays=1024, n_samples=64,
             body_sample_ratio=0.5, eval_every=50_000, save_every=5000, log_every=100, skip_far=0.1)
