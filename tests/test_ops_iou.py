"""Rotated BEV / 3D IoU against shapely, NMS and points_in_boxes against hand-worked / brute-force answers."""
import math

import numpy as np
import pytest
import torch

from perception3d.ops import (batched_nms_rotated, box_diou_3d_axis_aligned, box_iou_3d, box_iou_3d_aligned,
                              box_iou_bev, box_iou_bev_aligned,
                              circle_nms, nms_rotated, points_in_boxes, points_in_boxes_count,
                              points_in_boxes_mask)
from perception3d.structures.boxes import bev_corners

shapely = pytest.importorskip("shapely.geometry")


def _shapely_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ca = bev_corners(torch.as_tensor(a, dtype=torch.float64)).numpy()
    cb = bev_corners(torch.as_tensor(b, dtype=torch.float64)).numpy()
    out = []
    for i in range(len(a)):
        pa, pb = shapely.Polygon(ca[i]), shapely.Polygon(cb[i])
        inter = pa.intersection(pb).area
        out.append(inter / (pa.area + pb.area - inter))
    return np.asarray(out)


def _special_pairs() -> tuple:
    """Identical, disjoint, contained, touching (edge and corner), 45-degree rotated, far away."""
    A, B = [], []
    base = [1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.3]
    A.append(base); B.append(base)                                             # identical
    A.append(base); B.append([30.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.3])             # disjoint
    A.append([0, 0, 0, 4, 4, 1, 0.0]); B.append([0.5, 0.2, 0, 1, 1, 1, 0.7])  # contained
    A.append([0, 0, 0, 2, 2, 1, 0.0]); B.append([2, 0, 0, 2, 2, 1, 0.0])      # touching along an edge
    A.append([0, 0, 0, 2, 2, 1, 0.0]); B.append([2, 2, 0, 2, 2, 1, 0.0])      # touching at a corner
    A.append([0, 0, 0, 2, 2, 1, 0.0]); B.append([0, 0, 0, 2, 2, 1, math.pi / 4])  # 45 deg: octagon
    A.append([0, 0, 0, 4, 1, 1, 0.0]); B.append([0, 0, 0, 4, 1, 1, math.pi / 2])  # cross
    A.append([0, 0, 0, 2, 2, 1, 0.0]); B.append([0, 0, 0, 2, 2, 1, math.pi])      # same square, yaw + pi
    A.append([70.3, -65.1, 0, 4.5, 1.9, 1.6, 1.2]); B.append([70.5, -65.0, 0, 4.4, 2.0, 1.6, 1.25])  # far
    A.append([0, 0, 0, 2, 2, 1, 0.0]); B.append([1, 1, 0, 2, 2, 1, 0.0])      # quarter overlap: 1/7
    return np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)


def _random_pairs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = np.c_[rng.uniform(-3, 3, (n, 2)), rng.uniform(-1, 1, n), rng.uniform(0.3, 5, (n, 3)),
              rng.uniform(-4, 4, n)]
    b = np.c_[a[:, :2] + rng.uniform(-2.5, 2.5, (n, 2)), rng.uniform(-1, 1, n), rng.uniform(0.3, 5, (n, 3)),
              rng.uniform(-4, 4, n)]
    return a, b


def test_bev_iou_matches_shapely_random_and_special():
    a, b = _random_pairs(600)
    sa, sb = _special_pairs()
    a, b = np.concatenate([a, sa]), np.concatenate([b, sb])
    ref = _shapely_iou(a, b)
    got64 = box_iou_bev_aligned(torch.as_tensor(a), torch.as_tensor(b)).numpy()
    got32 = box_iou_bev_aligned(torch.as_tensor(a, dtype=torch.float32),
                                torch.as_tensor(b, dtype=torch.float32)).numpy()
    assert np.abs(got64 - ref).max() <= 1e-9
    # float32 input: the boxes themselves are rounded to float32, so compare against shapely on those
    ref32 = _shapely_iou(a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
    assert np.abs(got32 - ref32).max() <= 1e-5
    assert (ref > 0).sum() > 300 and (ref == 0).sum() > 10  # the random set covers both cases
    # hand-worked special cases
    s = got64[-10:]
    assert s[0] == pytest.approx(1.0, abs=1e-12)
    assert s[1] == 0.0 and s[3] == pytest.approx(0.0, abs=1e-12) and s[4] == pytest.approx(0.0, abs=1e-12)
    assert s[2] == pytest.approx(1.0 / 16.0, abs=1e-12)          # 1x1 inside 4x4
    octagon = 8 * (math.sqrt(2) - 1)                              # two unit-half-width squares at 45 deg
    assert s[5] == pytest.approx(octagon / (8 - octagon), abs=1e-12)
    assert s[6] == pytest.approx(1.0 / 7.0, abs=1e-12)            # 4x1 cross: 1 / (4 + 4 - 1)
    assert s[7] == pytest.approx(1.0, abs=1e-12)
    assert s[9] == pytest.approx(1.0 / 7.0, abs=1e-12)            # quarter overlap 1 / (4 + 4 - 1)


def test_pairwise_equals_aligned_and_is_symmetric():
    a, b = _random_pairs(40, seed=1)
    ta, tb = torch.as_tensor(a), torch.as_tensor(b)
    m = box_iou_bev(ta, tb)
    assert m.shape == (40, 40)
    ii, jj = torch.meshgrid(torch.arange(40), torch.arange(40), indexing="ij")
    ref = box_iou_bev_aligned(ta[ii.reshape(-1)], tb[jj.reshape(-1)]).reshape(40, 40)
    assert torch.allclose(m, ref, atol=1e-12)
    assert torch.allclose(box_iou_bev(tb, ta), m.T, atol=1e-12)
    m3 = box_iou_3d(ta, tb)
    ref3 = box_iou_3d_aligned(ta[ii.reshape(-1)], tb[jj.reshape(-1)]).reshape(40, 40)
    assert torch.allclose(m3, ref3, atol=1e-12)
    assert box_iou_bev(ta[:0], tb).shape == (0, 40)


def test_iou_3d_hand_case():
    # a: 2x2x2 at origin (z 0..2); b: shifted by 1 in x and 1 in z -> intersection 1*2*1 = 2, union 8+8-2 = 14
    a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 1.0, 2.0, 2.0, 2.0, 0.0]])
    assert box_iou_3d(a, b).item() == pytest.approx(2.0 / 14.0, abs=1e-7)
    # same BEV footprint, z ranges only touching -> 0
    c = torch.tensor([[0.0, 0.0, 2.0, 2.0, 2.0, 2.0, 0.0]])
    assert box_iou_3d(a, c).item() == 0.0
    # 45 deg rotation about z with identical z range: 3D IoU equals BEV IoU
    d = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, math.pi / 4]])
    assert box_iou_3d(a, d).item() == pytest.approx(box_iou_bev(a, d).item(), abs=1e-7)


def test_iou_bad_input():
    good = torch.zeros(1, 7) + 1
    with pytest.raises(ValueError, match="boxes_a: box 0 has a NaN"):
        box_iou_bev(torch.tensor([[float("nan"), 0, 0, 1, 1, 1, 0]]), good)
    with pytest.raises(ValueError, match="boxes_b: box 1 has a non-positive size"):
        box_iou_3d(good, torch.tensor([[0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 0, 1, 0.0]]))
    with pytest.raises(ValueError, match=r"boxes_a: expected a \[N, 7\]"):
        box_iou_bev(torch.zeros(3, 5), good)
    with pytest.raises(ValueError, match="same length"):
        box_iou_bev_aligned(good, torch.cat([good, good]))


def test_nms_hand_case():
    boxes = torch.tensor([
        [0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],   # 0: score 0.9
        [0.2, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],   # 1: IoU with 0 = 3.8*2/(8+8-7.6) = 0.905 -> suppressed
        [1.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],   # 2: IoU with 0 = 6/10 = 0.6 -> kept at 0.7
        [10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],  # 3: alone
        [10.0, 0.1, 0.0, 4.0, 2.0, 1.5, 1.57],  # 4: crosses 3, IoU ~ 1/3 -> kept
    ])
    scores = torch.tensor([0.9, 0.95, 0.8, 0.5, 0.4])
    # order by score: 1 (0.95), 0 (0.9), 2, 3, 4. 0 vs 1 -> 0 suppressed; 2 vs 1: 3.2*2/(16-6.4)=0.667 kept
    keep = nms_rotated(boxes, scores, iou_threshold=0.7)
    assert keep.tolist() == [1, 2, 3, 4]
    keep = nms_rotated(boxes, scores, iou_threshold=0.5)   # 2 (0.667 with 1) now suppressed
    assert keep.tolist() == [1, 3, 4]
    keep = nms_rotated(boxes, scores, iou_threshold=0.3)   # 4 (IoU ~0.33 with 3) suppressed too
    assert keep.tolist() == [1, 3]
    assert nms_rotated(boxes, scores, 0.7, pre_max_size=2).tolist() == [1]
    assert nms_rotated(boxes, scores, 0.7, post_max_size=2).tolist() == [1, 2]
    assert nms_rotated(boxes[:0], scores[:0], 0.5).numel() == 0
    with pytest.raises(ValueError, match="scores: expected 5"):
        nms_rotated(boxes, scores[:3], 0.5)


def test_circle_nms_hand_case():
    centers = torch.tensor([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0], [2.0, 0.9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # order 3, 0, 1, 2. thresh = 1.0 on squared distance: 3-2 d2=0.81 -> 2 suppressed; 0-1 d2=0.25 -> 1 gone
    assert circle_nms(centers, scores, thresh=1.0).tolist() == [3, 0]
    assert circle_nms(centers, scores, thresh=0.1).tolist() == [3, 0, 1, 2]
    assert circle_nms(centers, scores, thresh=0.1, post_max_size=3).tolist() == [3, 0, 1]


def _brute_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    mask = np.zeros((len(points), len(boxes)), dtype=bool)
    for j, (x, y, z, dx, dy, dz, yaw) in enumerate(boxes):
        for i, (px, py, pz) in enumerate(points[:, :3]):
            # rotate the point into the box frame by -yaw
            lx = math.cos(yaw) * (px - x) + math.sin(yaw) * (py - y)
            ly = -math.sin(yaw) * (px - x) + math.cos(yaw) * (py - y)
            mask[i, j] = abs(lx) <= dx / 2 and abs(ly) <= dy / 2 and z <= pz <= z + dz
    return mask


def test_points_in_boxes_vs_brute_force():
    rng = np.random.default_rng(3)
    boxes = np.c_[rng.uniform(-5, 5, (12, 2)), rng.uniform(-1, 0, 12), rng.uniform(0.5, 4, (12, 3)),
                  rng.uniform(-3.2, 3.2, 12)].astype(np.float32)
    points = np.c_[rng.uniform(-7, 7, (1500, 2)), rng.uniform(-1.5, 3.5, 1500), rng.uniform(0, 1, 1500)]
    points = points.astype(np.float32)
    ref = _brute_points_in_boxes(points.astype(np.float64), boxes.astype(np.float64))
    mask = points_in_boxes_mask(points, boxes).numpy()
    assert mask.sum() > 100
    assert (mask == ref).all()
    idx = points_in_boxes(torch.as_tensor(points), torch.as_tensor(boxes)).numpy()
    ref_idx = np.where(ref.any(1), ref.argmax(1), -1)
    assert (idx == ref_idx).all()
    assert points_in_boxes(points, boxes[:0]).tolist() == [-1] * 1500
    with pytest.raises(ValueError, match="points: expected"):
        points_in_boxes(points[:, :2], boxes)


def test_points_in_boxes_tolerance_and_centre_z_worked_by_hand():
    """A 2 × 1 × 2 m box at (1, 2, z) turned by 90°: its x-extent is 1 m and its y-extent 2 m. Points on a face, a
    rounding step (5e-7 m) outside it, and at z of the centre/bottom conventions, counted by hand."""
    box = np.array([[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, np.pi / 2]])
    pts = np.array([[1.5, 2.0, 1.0],            # on the +x face (local y = -0.5 = -w/2): inside in every mode
                    [1.5 + 5e-7, 2.0, 1.0],     # 5e-7 m outside that face: only with the 1e-6 m tolerance
                    [1.0, 3.0, 1.0],            # on the +y face (local x = +1 = l/2)
                    [1.0, 2.0, 0.1],            # below a centre z of 1 (bottom 0): inside only as a centre box
                    [1.0, 2.0, 2.9],            # above a centre-z box's top (2): inside only as a bottom box (1..3)
                    [1.0, 2.0, 0.0]])           # the centre-z box's bottom face
    assert points_in_boxes_mask(pts, box)[:, 0].tolist() == [True, True, True, False, True, False]
    assert points_in_boxes_mask(pts, box, eps=0.0)[:, 0].tolist() == [True, False, True, False, True, False]
    assert points_in_boxes_mask(pts, box, eps=0.0, z_center=True)[:, 0].tolist() == [True, False, True, True,
                                                                                      False, True]
    assert points_in_boxes_count(pts, box, eps=0.0, z_center=True).tolist() == [4]
    two = np.concatenate([box, box + [0, 0, 0, 0, 0, 0, 0]])   # a point in two boxes counts in both
    assert points_in_boxes_count(pts, two).tolist() == [4, 4]
    assert points_in_boxes_count(pts[:0], two).tolist() == [0, 0]
    assert points_in_boxes_count(pts, two[:0]).tolist() == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_iou_cuda_matches_cpu():
    a, b = _random_pairs(200, seed=5)
    ta, tb = torch.as_tensor(a), torch.as_tensor(b)
    assert torch.allclose(box_iou_bev(ta.cuda(), tb.cuda()).cpu(), box_iou_bev(ta, tb), atol=1e-10)
    assert torch.allclose(box_iou_3d(ta.cuda(), tb.cuda()).cpu(), box_iou_3d(ta, tb), atol=1e-10)


def test_nms_matches_dense_greedy_reference():
    """Sparse-pair NMS gives the same kept list as a plain dense greedy loop over the full IoU matrix."""
    rng = np.random.default_rng(7)
    centres = rng.uniform(-20, 20, (30, 2))
    pick = rng.integers(0, 30, 300)
    boxes = torch.as_tensor(np.c_[centres[pick] + rng.normal(0, 0.6, (300, 2)), rng.uniform(-1, 0, 300),
                                  rng.uniform(1, 4.5, (300, 3)), rng.uniform(-3.2, 3.2, 300)])
    scores = torch.as_tensor(rng.uniform(0, 1, 300))
    for mode, thr in (("bev", 0.1), ("bev", 0.5), ("3d", 0.3)):
        order = torch.argsort(scores, descending=True)
        full = (box_iou_bev if mode == "bev" else box_iou_3d)(boxes[order], boxes[order].clone()).numpy()
        suppressed, ref = np.zeros(300, bool), []
        for k in range(300):
            if not suppressed[k]:
                ref.append(int(order[k]))
                suppressed |= full[k] > thr
        assert nms_rotated(boxes, scores, thr, mode=mode).tolist() == ref


def test_batched_nms_keeps_classes_apart():
    boxes = torch.tensor([[0.0, 0, 0, 4, 2, 1.5, 0], [0.1, 0, 0, 4, 2, 1.5, 0], [0.2, 0, 0, 4, 2, 1.5, 0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # labels 0, 1, 0: box 1 survives (other class), box 2 is suppressed by box 0
    assert batched_nms_rotated(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert batched_nms_rotated(boxes, scores, torch.tensor([0, 1, 2]), 0.5).tolist() == [0, 1, 2]
    assert batched_nms_rotated(boxes, scores, torch.tensor([0, 1, 2]), 0.5, post_max_size=2).tolist() == [0, 1]
    with pytest.raises(ValueError, match="labels: expected 3"):
        batched_nms_rotated(boxes, scores, torch.tensor([0, 1]), 0.5)


def test_diou_axis_aligned_hand_case_and_gradients():
    a = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.3]], requires_grad=True)
    b = torch.tensor([[1.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.0]])
    # by hand: overlap 3 × 2 × 2 = 12, union 16 + 16 − 12 = 20; centres 1 m apart; enclosing 5 × 2 × 2 → d² = 33
    d = box_diou_3d_axis_aligned(a, b)
    assert d.item() == pytest.approx(12 / 20 - 1 / 33, abs=1e-6)
    d.sum().backward()
    assert a.grad[0, 0] > 0 and a.grad[0, 6] == 0           # moving towards b helps; the yaw is ignored
    same = torch.tensor([[5.0, -3.0, -1.0, 4.0, 2.0, 1.5, 1.0]])
    assert box_diou_3d_axis_aligned(same, same).item() == pytest.approx(1.0)
    # yaw 0: the IoU part equals the exact 3D IoU of concentric boxes
    g = torch.Generator().manual_seed(0)
    p = torch.cat([torch.zeros(8, 3), torch.rand(8, 3, generator=g) + 0.5, torch.zeros(8, 1)], 1)
    q = torch.cat([torch.zeros(8, 3), torch.rand(8, 3, generator=g) + 0.5, torch.zeros(8, 1)], 1)
    p[:, 2], q[:, 2] = -p[:, 5] / 2, -q[:, 5] / 2            # same gravity centre
    assert torch.allclose(box_diou_3d_axis_aligned(p, q), box_iou_3d_aligned(p, q), atol=1e-6)
    far = torch.tensor([[100.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    assert -1.0 <= box_diou_3d_axis_aligned(far, same[:, :7]).item() < -0.9
    with pytest.raises(ValueError, match="box_diou_3d_axis_aligned"):
        box_diou_3d_axis_aligned(torch.zeros(2, 7), torch.zeros(3, 7))
