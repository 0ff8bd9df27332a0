"""CUDA parity of the geometry ops: rotated IoU, NMS and points-in-boxes give the CPU results on CUDA.
Skipped without a GPU; run by scripts/gpu_check.sh."""
from __future__ import annotations

import pytest
import torch

from perception3d.ops.iou3d import box_iou_3d, box_iou_bev
from perception3d.ops.nms import batched_nms_rotated, circle_nms, nms_rotated
from perception3d.ops.points_in_boxes import points_in_boxes

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _clustered_boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, 7] boxes in clusters of 4 jittered copies (so NMS has work to do) and [n] distinct scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n // 4, 3, generator=g) * torch.tensor([60.0, 60.0, 2.0]) - torch.tensor([30.0, 30.0, 1.0])
    base = torch.cat([centres, torch.tensor([4.5, 2.0, 1.6]).expand(len(centres), 3),
                      torch.rand(len(centres), 1, generator=g) * 6.28], 1).repeat_interleave(4, 0)
    jitter = torch.randn(base.shape, generator=g) * torch.tensor([0.4, 0.3, 0.1, 0.3, 0.1, 0.1, 0.2])
    scores = torch.randperm(len(base), generator=g).double() / len(base)
    return (base + jitter).double(), scores


def test_iou_bev_and_3d_cuda_equal_cpu():
    a, _ = _clustered_boxes(200, 0)
    b, _ = _clustered_boxes(160, 1)
    assert torch.allclose(box_iou_bev(a.cuda(), b.cuda()).cpu(), box_iou_bev(a, b), atol=1e-9)
    assert torch.allclose(box_iou_3d(a.cuda(), b.cuda()).cpu(), box_iou_3d(a, b), atol=1e-9)


@pytest.mark.parametrize("mode", ["bev", "3d"])
def test_nms_cuda_keeps_the_cpu_boxes(mode):
    boxes, scores = _clustered_boxes(400, 2)
    ref = nms_rotated(boxes, scores, 0.1, mode=mode)
    got = nms_rotated(boxes.cuda(), scores.cuda(), 0.1, mode=mode)
    assert got.device.type == "cuda"
    assert 50 <= len(ref) < 400  # the clusters were really suppressed
    assert torch.equal(ref, got.cpu())
    labels = torch.arange(400) % 3
    ref = batched_nms_rotated(boxes, scores, labels, 0.1)
    got = batched_nms_rotated(boxes.cuda(), scores.cuda(), labels.cuda(), 0.1)
    assert torch.equal(ref, got.cpu())
    ref = circle_nms(boxes[:, :2], scores, 4.0)
    assert torch.equal(ref, circle_nms(boxes[:, :2].cuda(), scores.cuda(), 4.0).cpu())


def test_points_in_boxes_cuda_equals_cpu():
    boxes, _ = _clustered_boxes(80, 3)
    g = torch.Generator().manual_seed(4)
    pts = (torch.rand(50_000, 3, generator=g) * torch.tensor([64.0, 64.0, 4.0]) - torch.tensor([32.0, 32.0, 2.0]))
    ref = points_in_boxes(pts.double(), boxes)
    got = points_in_boxes(pts.double().cuda(), boxes.cuda())
    assert (ref >= 0).sum() > 100
    assert torch.equal(ref, got.cpu())
