"""Exact rotated BEV IoU and 3D IoU of LiDAR boxes ``(x, y, z, dx, dy, dz, yaw)``, pure PyTorch.

The BEV intersection of two rotated rectangles is found by **Sutherland–Hodgman clipping**: the
rectangle A (a convex quad, counter-clockwise) is clipped in turn by the four half-planes of B's
edges. Clipping a convex polygon by one half-plane adds at most one vertex, so the polygon never
has more than 8 vertices; we keep it in a fixed [P, 8, 2] buffer with a vertex count, so that all
pairs are clipped at once (batched, no Python loop over pairs) on CPU or CUDA. The area is the
shoelace formula. Geometry is done in float64 internally (differences of large coordinates such
as x = 70 m lose precision in float32); results are returned in the input's floating dtype.

3D IoU = BEV intersection * z-overlap / (vol_a + vol_b - intersection volume), with z the bottom
(as Waymo's and KITTI's evaluators, which both use upright boxes).

Pairwise functions only clip the pairs whose rotated footprints' axis-aligned bounds overlap, found by
an x-sorted window search (:func:`candidate_pairs`), so cost and memory follow the number of near pairs
rather than N * M; NMS uses the sparse pairs directly (:func:`pairwise_iou_sparse`).
"""
from __future__ import annotations

from typing import Tuple

import torch

from perception3d.ops.box_tensor import as_box_tensor, bev_corners, check_boxes
from perception3d.ops.window_pairs import window_pairs

__all__ = ["bev_intersection_aligned", "box_iou_bev", "box_iou_3d", "box_iou_bev_aligned",
           "box_iou_3d_aligned", "box_diou_3d_axis_aligned", "polygon_clip_area", "candidate_pairs",
           "pairwise_iou_sparse"]

_MAX_V = 8  # a quad clipped by 4 half-planes has at most 8 vertices
_CHUNK = 1 << 17  # pairs clipped at once


def _clip_halfplane(poly: torch.Tensor, n: torch.Tensor, a: torch.Tensor, b: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One Sutherland–Hodgman step: keep the part of each polygon left of the directed line a->b.

    poly [P, V, 2] (first n[p] vertices valid), a, b [P, 2]. Returns the clipped polygons
    [P, V, 2] and their vertex counts [P].
    """
    P, V, _ = poly.shape
    idx = torch.arange(V, device=poly.device)
    nxt = (idx[None, :] + 1) % n.clamp(min=1)[:, None]  # [P, V] index of the next vertex (cyclic)
    valid = idx[None, :] < n[:, None]
    s = poly  # start vertices S
    e = torch.gather(poly, 1, nxt[..., None].expand(-1, -1, 2))  # end vertices E
    ab = (b - a)[:, None, :]
    # signed distance (scaled): > 0 left of a->b (inside for a CCW clip polygon)
    ds = ab[..., 0] * (s[..., 1] - a[:, None, 1]) - ab[..., 1] * (s[..., 0] - a[:, None, 0])
    de = ab[..., 0] * (e[..., 1] - a[:, None, 1]) - ab[..., 1] * (e[..., 0] - a[:, None, 0])
    s_in, e_in = ds >= 0, de >= 0
    denom = ds - de
    t = torch.where(s_in != e_in, ds / torch.where(denom == 0, torch.ones_like(denom), denom),
                    torch.zeros_like(ds))
    inter = s + t[..., None] * (e - s)
    # for edge S->E the outputs are: [intersection if the edge crosses], then [E if E inside]
    out = torch.stack([inter, e], dim=2).reshape(P, 2 * V, 2)
    keep = torch.stack([(s_in != e_in) & valid, e_in & valid], dim=2).reshape(P, 2 * V)
    # compact: scatter kept entries to their running index (cumsum), the others to a dummy slot
    dest = torch.cumsum(keep, dim=1) - 1
    dest = torch.where(keep & (dest < V), dest, torch.full_like(dest, V))
    buf = poly.new_zeros(P, V + 1, 2)
    buf.scatter_(1, dest[..., None].expand(-1, -1, 2), out)
    new_n = keep.sum(dim=1).clamp(max=V)
    return buf[:, :V], new_n


def polygon_clip_area(subject: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
    """Area of the intersection of convex quads ``subject`` [P, 4, 2] and ``clip`` [P, 4, 2] (both CCW).

    Sutherland–Hodgman clipping of ``subject`` by each edge of ``clip``; shoelace area. float64.
    """
    P = subject.shape[0]
    poly = subject.new_zeros(P, _MAX_V, 2)
    poly[:, :4] = subject
    n = torch.full((P,), 4, dtype=torch.long, device=subject.device)
    for k in range(4):
        poly, n = _clip_halfplane(poly, n, clip[:, k], clip[:, (k + 1) % 4])
    idx = torch.arange(_MAX_V, device=poly.device)
    nxt = (idx[None, :] + 1) % n.clamp(min=1)[:, None]
    valid = idx[None, :] < n[:, None]
    q = torch.gather(poly, 1, nxt[..., None].expand(-1, -1, 2))
    cross = poly[..., 0] * q[..., 1] - poly[..., 1] * q[..., 0]
    area = 0.5 * torch.where(valid, cross, torch.zeros_like(cross)).sum(dim=1)
    return torch.where(n >= 3, area.clamp(min=0), torch.zeros_like(area))


def bev_intersection_aligned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[P] BEV intersection area of aligned box pairs a[i], b[i] ([P, 7], any float dtype) in float64."""
    a64, b64 = a.double(), b.double()
    # translate each pair so that a's centre is the origin: keeps float64 precision for far boxes
    shift = a64[:, :2].clone()
    a64 = a64.clone()
    b64 = b64.clone()
    a64[:, :2] -= shift
    b64[:, :2] -= shift
    out = torch.empty(a.shape[0], dtype=torch.float64, device=a.device)
    for s in range(0, a.shape[0], _CHUNK):
        ca, cb = bev_corners(a64[s:s + _CHUNK]), bev_corners(b64[s:s + _CHUNK])
        out[s:s + _CHUNK] = polygon_clip_area(ca, cb)
    return out


def _z_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lo = torch.maximum(a[:, 2], b[:, 2])
    hi = torch.minimum(a[:, 2] + a[:, 5], b[:, 2] + b[:, 5])
    return (hi - lo).clamp(min=0)


def _prep(boxes, name: str) -> torch.Tensor:
    t = as_box_tensor(boxes, name)
    check_boxes(t, name)
    return t


def _aligned(a: torch.Tensor, b: torch.Tensor, three_d: bool) -> torch.Tensor:
    inter = bev_intersection_aligned(a, b)
    a64, b64 = a.double(), b.double()
    if three_d:
        inter = inter * _z_overlap(a64, b64)
        va = a64[:, 3] * a64[:, 4] * a64[:, 5]
        vb = b64[:, 3] * b64[:, 4] * b64[:, 5]
    else:
        va = a64[:, 3] * a64[:, 4]
        vb = b64[:, 3] * b64[:, 4]
    union = (va + vb - inter).clamp(min=1e-12)
    return (inter / union).clamp(0.0, 1.0)


def box_iou_bev_aligned(boxes_a, boxes_b) -> torch.Tensor:
    """[N] rotated BEV IoU of aligned pairs ``boxes_a[i]``, ``boxes_b[i]`` ([N, 7] each)."""
    a, b = _prep(boxes_a, "boxes_a"), _prep(boxes_b, "boxes_b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"boxes_a ({a.shape[0]}) and boxes_b ({b.shape[0]}) must have the same length")
    return _aligned(a, b.to(a.device), False).to(a.dtype)


def box_iou_3d_aligned(boxes_a, boxes_b) -> torch.Tensor:
    """[N] 3D IoU of aligned pairs ``boxes_a[i]``, ``boxes_b[i]`` ([N, 7] each)."""
    a, b = _prep(boxes_a, "boxes_a"), _prep(boxes_b, "boxes_b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"boxes_a ({a.shape[0]}) and boxes_b ({b.shape[0]}) must have the same length")
    return _aligned(a, b.to(a.device), True).to(a.dtype)


def box_diou_3d_axis_aligned(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """[N] differentiable 3D Distance-IoU of aligned pairs, **yaw ignored** (a regression loss, not a metric).

    DIoU (Zheng et al., AAAI 2020, eq. 6) = IoU − ρ²(c_p, c_g) / d², with both boxes taken as axis-aligned
    cuboids of their sizes (the yaw is not used), ρ the distance of the gravity centres and d the diagonal of the
    smallest axis-aligned cuboid holding both; clamped to [-1, 1]. This is the IoU of OpenPCDet's
    ``bbox3d_overlaps_diou``, the loss behind DSVT's ``IOU_REG_LOSS`` (``1 − DIoU`` at the positive cells),
    where the yaw is learned by the L1 (cos, sin) loss alone. Boxes ``(x, y, z_bottom, dx, dy, dz, yaw)``
    [N, 7]; gradients flow to the centres and sizes of both arguments. Sizes must be positive.
    """
    if pred.shape != gt.shape or pred.dim() != 2 or pred.shape[-1] < 6:
        raise ValueError(f"box_diou_3d_axis_aligned: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must both "
                         "be [N, 7] (x, y, z, dx, dy, dz, yaw; the yaw is not used)")
    half_p, half_g = pred[:, 3:6] / 2, gt[:, 3:6] / 2
    cen_p = torch.cat([pred[:, :2], pred[:, 2:3] + half_p[:, 2:3]], dim=1)
    cen_g = torch.cat([gt[:, :2], gt[:, 2:3] + half_g[:, 2:3]], dim=1)
    lo_p, hi_p, lo_g, hi_g = cen_p - half_p, cen_p + half_p, cen_g - half_g, cen_g + half_g
    inter = (torch.minimum(hi_p, hi_g) - torch.maximum(lo_p, lo_g)).clamp(min=0).prod(dim=1)
    union = pred[:, 3:6].prod(dim=1) + gt[:, 3:6].prod(dim=1) - inter
    outer_diag2 = (torch.maximum(hi_p, hi_g) - torch.minimum(lo_p, lo_g)).pow(2).sum(dim=1)
    centre_dist2 = (cen_p - cen_g).pow(2).sum(dim=1)
    return (inter / union.clamp(min=1e-12) - centre_dist2 / outer_diag2.clamp(min=1e-12)).clamp(-1.0, 1.0)


def _aabb(boxes: torch.Tensor):
    """[N, 2] lower and upper BEV bounds of rotated boxes."""
    c, s = torch.cos(boxes[:, 6]).abs(), torch.sin(boxes[:, 6]).abs()
    hx = 0.5 * (boxes[:, 3] * c + boxes[:, 4] * s)
    hy = 0.5 * (boxes[:, 3] * s + boxes[:, 4] * c)
    half = torch.stack([hx, hy], dim=1) * (1 + 1e-9) + 1e-9
    return boxes[:, :2] - half, boxes[:, :2] + half


def candidate_pairs(a: torch.Tensor, b: torch.Tensor, three_d: bool = False, upper_only: bool = False,
                    max_pairs: int = 1 << 22):
    """Index pairs (i, j) whose rotated footprints' axis-aligned bounds overlap (and z ranges, for 3D).

    Boxes of ``b`` are sorted by x; each box of ``a`` scans only the x-window its bounds can reach, so the
    cost follows the number of near pairs rather than N * M. ``upper_only`` keeps i < j (self-pairs).
    Returns two [K] long tensors.
    """
    N, M = a.shape[0], b.shape[0]
    dev = a.device
    if N == 0 or M == 0:
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return e, e
    lo_a, hi_a = _aabb(a)
    lo_b, hi_b = _aabb(b)
    order = torch.argsort(b[:, 0])
    bx = b[order, 0].contiguous()
    reach = (hi_b[:, 0] - b[:, 0]).max()
    start = torch.searchsorted(bx, (lo_a[:, 0] - reach).contiguous())
    end = torch.searchsorted(bx, (hi_a[:, 0] + reach).contiguous(), right=True)
    out_i, out_j = [], []
    for i, j in window_pairs(start, end, order, max_pairs):
        keep = ((lo_a[i, 0] < hi_b[j, 0]) & (lo_b[j, 0] < hi_a[i, 0])
                & (lo_a[i, 1] < hi_b[j, 1]) & (lo_b[j, 1] < hi_a[i, 1]))
        if three_d:
            keep &= (torch.minimum(a[i, 2] + a[i, 5], b[j, 2] + b[j, 5]) > torch.maximum(a[i, 2], b[j, 2]))
        if upper_only:
            keep &= i < j
        out_i.append(i[keep])
        out_j.append(j[keep])
    return torch.cat(out_i), torch.cat(out_j)


def pairwise_iou_sparse(boxes: torch.Tensor, three_d: bool = False):
    """Self-IoU of ``boxes`` [N, 7] as sparse pairs: (i [K], j [K], iou [K] float64) with i < j, IoU > 0
    possible (pairs that cannot overlap are left out). Used by NMS."""
    b = _prep(boxes, "boxes").double()
    i, j = candidate_pairs(b, b, three_d, upper_only=True)
    iou = _aligned(b[i], b[j], three_d) if i.numel() else torch.zeros(0, dtype=torch.float64, device=b.device)
    return i, j, iou


def _pairwise(boxes_a, boxes_b, three_d: bool) -> torch.Tensor:
    same = boxes_a is boxes_b
    a = _prep(boxes_a, "boxes_a")
    b = a if same else _prep(boxes_b, "boxes_b").to(a.device)
    N, M = a.shape[0], b.shape[0]
    out = torch.zeros(N, M, dtype=a.dtype, device=a.device)
    if N == 0 or M == 0:
        return out
    a64, b64 = a.double(), b.double()
    i, j = candidate_pairs(a64, b64, three_d, upper_only=same)
    if i.numel():
        v = _aligned(a64[i], b64[j], three_d).to(a.dtype)
        out[i, j] = v
        if same:  # self-IoU: computed for i < j only
            out[j, i] = v
    if same:
        out.diagonal().fill_(1.0)
    return out


def box_iou_bev(boxes_a, boxes_b) -> torch.Tensor:
    """[N, M] rotated BEV IoU between ``boxes_a`` [N, 7] and ``boxes_b`` [M, 7] (z ignored)."""
    return _pairwise(boxes_a, boxes_b, False)


def box_iou_3d(boxes_a, boxes_b) -> torch.Tensor:
    """[N, M] 3D IoU between upright boxes ``boxes_a`` [N, 7] and ``boxes_b`` [M, 7]."""
    return _pairwise(boxes_a, boxes_b, True)
