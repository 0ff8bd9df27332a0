"""Mixed precision on CUDA: a detector's fp16-autocast losses match fp32 and one GradScaler step gives finite,
non-zero gradients through the sparse backbone. Skipped without a GPU; run by scripts/gpu_check.sh."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("voxel", [False, True], ids=["pillar", "voxel_sparse_conv"])
def test_amp_losses_match_fp32_and_step_is_finite(voxel):
    from test_models_det import _scene, _tiny_cfg

    from perception3d.apis import init_model
    torch.manual_seed(0)
    model = init_model(_tiny_cfg(voxel=voxel), device="cuda").train()
    scenes = [_scene(s) for s in range(2)]
    data = dict(inputs=dict(points=[p.cuda() for p, _ in scenes]),
                data_samples=[dict(gt_bboxes_3d=b.cuda(), gt_labels_3d=torch.tensor([0], device="cuda"))
                              for _, b in scenes])
    batch = model.data_preprocessor(data, True)
    torch.manual_seed(1)
    ref = {k: float(v) for k, v in model(**batch, mode="loss").items()}
    torch.manual_seed(1)
    with torch.autocast("cuda", dtype=torch.float16):
        losses = model(**batch, mode="loss")
    for k, v in losses.items():
        assert torch.isfinite(v), k
        assert abs(float(v) - ref[k]) <= 0.03 * abs(ref[k]) + 1e-3, (k, float(v), ref[k])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    scaler.scale(sum(losses.values())).backward()
    scaler.unscale_(opt)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    scaler.step(opt)
    scaler.update()
