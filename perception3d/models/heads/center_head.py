"""CenterHead (CenterPoint, Yin et al. CVPR 2021; OpenPCDet's ``CenterHead``; DSVT's IoU-rectified variant).

Per class group ("task"): a heat map of object centres (one channel per class) and dense box regression
(``center`` 2: sub-cell offset, ``center_z`` 1: gravity-centre z, ``dim`` 3: log sizes, ``rot`` 2: cos/sin yaw,
optional ``iou`` 1: predicted IoU of the decoded box, in [-1, 1]).

Targets (CenterPoint §3.1, after CenterNet): each ground-truth box splats a Gaussian of radius
``max(min_radius, gaussian_radius(l, w, gaussian_overlap))`` (feature-map cells) on its class channel, peak 1
at its floor-rounded centre cell; the regression target is read at that cell only.
Losses: penalty-reduced focal loss on the heat map (CenterNet eq. 1, α = 2, β = 4) normalised by the number
of objects; L1 on the box code weighted by ``code_weights``, normalised the same way; with an IoU branch
an L1 loss towards ``2·IoU(decoded box, gt) − 1`` (DSVT/AFDetV2); optionally (DSVT's ``IOU_REG_LOSS``) a
Distance-IoU regression loss ``1 − DIoU`` on the decoded boxes, which drives centres and sizes towards the
overlap that the IoU-0.7 metric asks for. Decoding: top-K peaks, the score
threshold on the raw heat-map score, range limit; with the IoU branch the kept scores are then rectified,
``s' = s^(1−α) · ((iou + 1) / 2)^α`` (AFDetV2 eq. 5, DSVT's ``IOU_RECTIFIER``), before rotated NMS or circle
NMS per task or per class (the order of DSVT's ``CenterHead.generate_predicted_boxes``).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.ops import box_diou_3d_axis_aligned, box_iou_3d_aligned, circle_nms, nms_rotated
from perception3d.registry import MODELS
from perception3d.structures.bev_grid import BEVGrid

__all__ = ["CenterHead", "SeparateHead", "gaussian_radius", "draw_gaussian", "focal_loss_centernet"]

BOX_CODE_SIZE = 8  # dx, dy (offset), z, log dx, log dy, log dz, cos, sin


def gaussian_radius(height: float, width: float, min_overlap: float = 0.5) -> float:
    """CenterNet's Gaussian radius (the smallest of its three overlap cases), as in CenterPoint/OpenPCDet.

    Kept bit-for-bit with the reference (including its missing /2a), so configs and results carry over.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: torch.Tensor, cx: int, cy: int, radius: int) -> None:
    """In place: heatmap[y, x] = max(heatmap, exp(-((x-cx)² + (y-cy)²) / (2σ²))), σ = (2r+1)/6, cut at r."""
    h, w = heatmap.shape
    d = 2 * radius + 1
    sigma = d / 6
    r = torch.arange(-radius, radius + 1, dtype=heatmap.dtype, device=heatmap.device)
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma * sigma))
    g[g < torch.finfo(g.dtype).eps * g.max()] = 0
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    if right <= -left or bottom <= -top:
        return
    region = heatmap[cy - top:cy + bottom, cx - left:cx + right]
    patch = g[radius - top:radius + bottom, radius - left:radius + right]
    torch.maximum(region, patch, out=region)


def focal_loss_centernet(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Penalty-reduced pixel-wise focal loss (CenterNet eq. 1, α = 2, β = 4), summed, / max(#peaks, 1)."""
    pred = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg_w = torch.pow(1 - target, 4)
    pos_loss = torch.log(pred) * torch.pow(1 - pred, 2) * pos
    neg_loss = torch.log(1 - pred) * torch.pow(pred, 2) * neg_w * (1 - pos)
    num_pos = pos.sum()
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos.clamp(min=1)


def _gather(feat: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """feat [B, C, H, W], ind [B, K] (flat y·W + x) → [B, K, C]."""
    b, c = feat.shape[:2]
    flat = feat.reshape(b, c, -1)
    return flat.gather(2, ind[:, None, :].expand(b, c, ind.shape[1])).transpose(1, 2)


class SeparateHead(nn.Module):
    """One small conv tower per output (``heads`` = {name: out_channels}): ``num_conv − 1`` × (3×3 conv without
    bias → BN → ReLU), then a 3×3 conv with bias (OpenPCDet's ``SeparateHead``).

    Initialisation as OpenPCDet: the heat-map tower's last bias is ``init_bias`` (prior ≈ 0.1 foreground,
    CenterNet); every conv of every regression tower (the hidden ones included) gets Kaiming-normal weights
    and zero biases. BN eps / momentum default to the DSVT/OpenPCDet Waymo values (``BN_EPS`` 1e-3,
    ``BN_MOM`` 0.01).
    """

    def __init__(self, in_channels: int, heads: dict[str, int], head_conv: int = 64, num_conv: int = 2,
                 init_bias: float = -2.19, bn_eps: float = 1e-3, bn_momentum: float = 0.01) -> None:
        super().__init__()
        self.heads = dict(heads)
        for name, out in self.heads.items():
            layers: list[nn.Module] = []
            c = in_channels
            for _ in range(num_conv - 1):
                layers += [nn.Conv2d(c, head_conv, 3, padding=1, bias=False),
                           nn.BatchNorm2d(head_conv, eps=bn_eps, momentum=bn_momentum), nn.ReLU()]
                c = head_conv
            final = nn.Conv2d(c, out, 3, padding=1, bias=True)
            layers.append(final)
            if name == "hm":
                nn.init.constant_(final.bias, init_bias)  # prior 0.1 foreground (CenterNet)
            else:
                for m in layers:
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight)
                        if m.bias is not None:
                            nn.init.zeros_(m.bias)
            setattr(self, name, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name)(x) for name in self.heads}


def _per_class(value, n: int, name: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"CenterHead test_cfg.{name}: expected one value per class ({n}), got {len(value)}")
    return [float(v) for v in value]


_DEFAULT_TEST_CFG = dict(score_thresh=0.1, topk=500, nms_type="rotate", nms_thr=0.7, nms_per_class=False,
                         pre_max_size=4096, post_max_size=500, circle_min_radius=None,
                         post_center_limit_range=None, iou_rectifier=None)


@MODELS.register_module()
class CenterHead(nn.Module):
    """CenterPoint head.

    Args:
        in_channels: BEV feature channels.
        class_names: all class names, in label order (label i = class_names[i]).
        tasks: class groups, each a list of names (default: one task with all classes).
        point_cloud_range: (x0, y0, z0, x1, y1, z1) metres.
        voxel_size, out_size_factor: optional. Inside a detector the head reads the BEV map's cell size and
            origin from the :class:`~perception3d.structures.BEVGrid` the detector passes to ``loss`` /
            ``predict`` (read off the sparse tensor's ``voxel_size``, ``stride`` and ``origin``), so configs
            need not restate them. Given both (the input voxel size (vx, vy[, vz]) and the feature map's stride
            relative to it), they are used when no grid is passed (the head on its own) and checked against
            the grid when one is: a mismatch is a ``ValueError``.
        common_heads: regression outputs (name → channels); ``with_iou`` adds ``iou`` 1.
        iou_reg_loss: add ``loss_iou_reg`` = loss_reg_weight · mean(1 − DIoU(decoded box, gt)) over the positive
            cells, DIoU with the yaw ignored (:func:`~perception3d.ops.box_diou_3d_axis_aligned`); DSVT's
            ``IOU_REG_LOSS: True``.
        gaussian_overlap, min_radius: target Gaussian size (CenterPoint: 0.1, 2).
        loss_cls_weight, loss_reg_weight, loss_iou_weight, code_weights: loss weights (OpenPCDet Waymo: 1, 2).
        test_cfg: see ``_DEFAULT_TEST_CFG`` (nms_type 'rotate' | 'circle' | None; nms_thr / circle_min_radius /
            iou_rectifier may be per class). ``score_thresh`` applies to the raw heat-map score, before the
            IoU rectification (as DSVT's / OpenPCDet's ``decode_bbox_from_heatmap``).
        bn_eps, bn_momentum: of every BatchNorm in the head (OpenPCDet Waymo ``BN_EPS`` 1e-3, ``BN_MOM`` 0.01;
            ``CenterPoint(bn_momentum=...)`` overrides the momentum of the whole detector).
    """

    def __init__(self, in_channels: int, class_names: Sequence[str], point_cloud_range: Sequence[float],
                 voxel_size: Optional[Sequence[float]] = None, tasks: Optional[Sequence[Sequence[str]]] = None,
                 out_size_factor: Optional[int] = None, shared_conv_channels: int = 64, head_conv_channels: int = 64,
                 num_head_convs: int = 2, common_heads: Optional[dict[str, int]] = None, with_iou: bool = False,
                 iou_reg_loss: bool = False,
                 gaussian_overlap: float = 0.1, min_radius: int = 2, max_objs: int = 500,
                 loss_cls_weight: float = 1.0, loss_reg_weight: float = 2.0, loss_iou_weight: float = 1.0,
                 code_weights: Optional[Sequence[float]] = None, test_cfg: Optional[dict] = None,
                 bn_eps: float = 1e-3, bn_momentum: float = 0.01) -> None:
        super().__init__()
        self.class_names = list(class_names)
        tasks = [list(self.class_names)] if tasks is None else [list(t) for t in tasks]
        for t in tasks:
            for name in t:
                if name not in self.class_names:
                    raise ValueError(f"CenterHead: task class {name!r} is not in class_names {self.class_names}")
        self.tasks = tasks
        self.task_labels = [torch.tensor([self.class_names.index(n) for n in t]) for t in tasks]
        if len(point_cloud_range) != 6:
            raise ValueError(f"CenterHead: point_cloud_range needs 6 values, got {point_cloud_range}")
        self.pc_range = [float(v) for v in point_cloud_range]
        self.voxel_size = None if voxel_size is None else [float(v) for v in voxel_size]
        self.out_size_factor = None if out_size_factor is None else int(out_size_factor)
        self.gaussian_overlap, self.min_radius, self.max_objs = gaussian_overlap, int(min_radius), int(max_objs)
        self.loss_cls_weight, self.loss_reg_weight, self.loss_iou_weight = loss_cls_weight, loss_reg_weight, \
            loss_iou_weight
        self.code_weights = list(code_weights) if code_weights is not None else [1.0] * BOX_CODE_SIZE
        if len(self.code_weights) != BOX_CODE_SIZE:
            raise ValueError(f"CenterHead: code_weights needs {BOX_CODE_SIZE} values, got {len(self.code_weights)}")
        heads = dict(common_heads) if common_heads is not None else dict(center=2, center_z=1, dim=3, rot=2)
        for k, c in dict(center=2, center_z=1, dim=3, rot=2).items():
            if heads.get(k) != c:
                raise ValueError(f"CenterHead: common_heads must contain {k}={c}, got {heads}")
        self.with_iou = bool(with_iou)
        self.iou_reg_loss = bool(iou_reg_loss)
        if self.with_iou:
            heads["iou"] = 1
        unknown = set(test_cfg or {}) - set(_DEFAULT_TEST_CFG)
        if unknown:
            raise KeyError(f"CenterHead: unknown test_cfg key(s) {sorted(unknown)}; valid: {sorted(_DEFAULT_TEST_CFG)}")
        self.test_cfg = {**_DEFAULT_TEST_CFG, **(test_cfg or {})}
        # OpenPCDet's USE_BIAS_BEFORE_NORM: False (no bias in a conv followed by BN)
        self.shared_conv = nn.Sequential(nn.Conv2d(in_channels, shared_conv_channels, 3, padding=1, bias=False),
                                         nn.BatchNorm2d(shared_conv_channels, eps=bn_eps, momentum=bn_momentum),
                                         nn.ReLU())
        self.task_heads = nn.ModuleList(
            SeparateHead(shared_conv_channels, dict(hm=len(t), **heads), head_conv_channels, num_head_convs,
                         bn_eps=bn_eps, bn_momentum=bn_momentum)
            for t in tasks)

    # ----------------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """BEV features [B, C, H, W] → per task {hm [B, n_cls, H, W], center [B,2,H,W], ...}."""
        x = self.shared_conv(x)
        return [head(x) for head in self.task_heads]

    # ----------------------------------------------------------------------------------------------- targets
    def get_targets(self, gt_boxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                    feat_hw: tuple[int, int], grid: Optional[BEVGrid] = None) -> list[dict[str, torch.Tensor]]:
        """Per task: heatmap [B, n_cls, H, W], ind [B, K], mask [B, K], box [B, K, 8], gt [B, K, 7].

        gt_boxes[i]: [M, 7] (x, y, z_bottom, dx, dy, dz, yaw); gt_labels[i]: [M] (index into class_names;
        negative labels are ignored).
        """
        h, w = feat_hw
        vx, vy, x0, y0 = self._geometry(grid)
        bsz, K = len(gt_boxes), self.max_objs
        out = []
        for t_i, labels_of_task in enumerate(self.task_labels):
            hm = torch.zeros(bsz, len(labels_of_task), h, w)
            ind = torch.zeros(bsz, K, dtype=torch.long)
            mask = torch.zeros(bsz, K)
            box = torch.zeros(bsz, K, BOX_CODE_SIZE)
            gt = torch.zeros(bsz, K, 7)
            for b in range(bsz):
                boxes = gt_boxes[b].detach().float().cpu()
                labels = gt_labels[b].detach().long().cpu()
                k = 0
                for j in range(boxes.shape[0]):
                    hit = (labels_of_task == labels[j]).nonzero()
                    if hit.numel() == 0:
                        continue
                    x, y, z, dx, dy, dz, yaw = boxes[j, :7].tolist()
                    if dx <= 0 or dy <= 0 or dz <= 0:
                        continue
                    cx, cy = (x - x0) / vx, (y - y0) / vy
                    ci, cj = int(math.floor(cx)), int(math.floor(cy))
                    if not (0 <= ci < w and 0 <= cj < h) or k >= K:
                        continue
                    radius = max(self.min_radius, int(gaussian_radius(dy / vy, dx / vx, self.gaussian_overlap)))
                    draw_gaussian(hm[b, int(hit[0])], ci, cj, radius)
                    ind[b, k] = cj * w + ci
                    mask[b, k] = 1
                    box[b, k] = torch.tensor([cx - ci, cy - cj, z + dz / 2, math.log(dx), math.log(dy),
                                              math.log(dz), math.cos(yaw), math.sin(yaw)])
                    gt[b, k] = boxes[j, :7]
                    k += 1
            out.append(dict(heatmap=hm, ind=ind, mask=mask, box=box, gt=gt))
        return out

    # ----------------------------------------------------------------------------------------------- decoding
    def _geometry(self, grid: Optional[BEVGrid]) -> tuple[float, float, float, float]:
        """(vx, vy, x0, y0): metres of one feature-map cell and the map's corner, from the grid the detector
        passes or, for the head on its own, from ``voxel_size × out_size_factor`` and ``point_cloud_range``."""
        configured = self.voxel_size is not None and self.out_size_factor is not None
        if configured:
            vx = self.voxel_size[0] * self.out_size_factor
            vy = self.voxel_size[1] * self.out_size_factor
            x0, y0 = self.pc_range[0], self.pc_range[1]
            if grid is not None and not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in
                                            zip((vx, vy, x0, y0), grid.cell + grid.origin)):
                raise ValueError(
                    f"CenterHead: the config's voxel_size {self.voxel_size[:2]} × out_size_factor "
                    f"{self.out_size_factor} and point_cloud_range corner {(x0, y0)} give {(vx, vy)} m cells, but "
                    f"the BEV map the backbone produced has {grid.cell} m cells from {grid.origin}; drop "
                    f"voxel_size / out_size_factor from the head's config to use the backbone's grid")
            return vx, vy, x0, y0
        if grid is None:
            raise ValueError("CenterHead: no BEV grid: call it through a detector (which passes grid=) or give "
                             "the head voxel_size and out_size_factor")
        return grid.cell[0], grid.cell[1], grid.origin[0], grid.origin[1]

    def _decode_boxes(self, preds: dict[str, torch.Tensor], ys: torch.Tensor, xs: torch.Tensor,
                      ind: torch.Tensor, grid: Optional[BEVGrid] = None) -> torch.Tensor:
        """Box code at flat indices ``ind`` [B, K] → LiDAR boxes [B, K, 7] (z at the bottom)."""
        vx, vy, x0, y0 = self._geometry(grid)
        center = _gather(preds["center"], ind)
        cz = _gather(preds["center_z"], ind)[..., 0]
        dim = torch.exp(_gather(preds["dim"], ind).clamp(max=8.0))
        rot = _gather(preds["rot"], ind)
        x = (xs + center[..., 0]) * vx + x0
        y = (ys + center[..., 1]) * vy + y0
        yaw = torch.atan2(rot[..., 1], rot[..., 0])
        return torch.stack([x, y, cz - dim[..., 2] / 2, dim[..., 0], dim[..., 1], dim[..., 2], yaw], dim=-1)

    # ----------------------------------------------------------------------------------------------- loss
    def loss(self, preds: list[dict[str, torch.Tensor]], gt_boxes: Sequence[torch.Tensor],
             gt_labels: Sequence[torch.Tensor], grid: Optional[BEVGrid] = None) -> dict[str, torch.Tensor]:
        """Focal heat-map loss + weighted L1 box loss (+ IoU loss) summed over tasks."""
        h, w = preds[0]["hm"].shape[-2:]
        targets = self.get_targets(gt_boxes, gt_labels, (h, w), grid)
        dev = preds[0]["hm"].device
        cw = torch.tensor(self.code_weights, device=dev)
        losses: dict[str, torch.Tensor] = {}
        for t_i, (p, t) in enumerate(zip(preds, targets)):
            t = {k: v.to(dev) for k, v in t.items()}
            l_hm = focal_loss_centernet(p["hm"], t["heatmap"])
            code = torch.cat([p["center"], p["center_z"], p["dim"], p["rot"]], dim=1)
            pred_box = _gather(code, t["ind"]).float()
            mask = t["mask"][..., None]
            num = t["mask"].sum().clamp(min=1)
            l1 = (F.l1_loss(pred_box * mask, t["box"] * mask, reduction="none") * cw).sum() / num
            sfx = f"_task{t_i}" if len(preds) > 1 else ""
            losses[f"loss_heatmap{sfx}"] = self.loss_cls_weight * l_hm
            losses[f"loss_bbox{sfx}"] = self.loss_reg_weight * l1
            if not (self.with_iou or self.iou_reg_loss):
                continue
            pos = t["mask"] > 0
            dec = None
            if pos.any():
                ys, xs = (t["ind"] // w).float(), (t["ind"] % w).float()
                # with gradients only where the DIoU loss needs them; the IoU branch's target is detached
                src = {k: v.float() if self.iou_reg_loss else v.detach().float() for k, v in p.items()}
                dec = self._decode_boxes(src, ys, xs, t["ind"], grid)[pos]
            if self.with_iou:
                iou_pred = _gather(p["iou"], t["ind"])[..., 0]
                if dec is not None:
                    with torch.no_grad():
                        iou_t = box_iou_3d_aligned(dec.detach(), t["gt"][pos].float()).to(dev)
                    l_iou = F.l1_loss(iou_pred[pos], 2 * iou_t - 1, reduction="sum") / num
                else:
                    l_iou = iou_pred.sum() * 0
                losses[f"loss_iou{sfx}"] = self.loss_iou_weight * l_iou
            if self.iou_reg_loss:
                # OpenPCDet's calculate_iou_reg_loss_centerhead: mean of 1 − DIoU over the positive cells,
                # weighted like the box L1 (loc_weight)
                l_reg = (1 - box_diou_3d_axis_aligned(dec, t["gt"][pos].float())).sum() / num if dec is not None \
                    else code.sum() * 0
                losses[f"loss_iou_reg{sfx}"] = self.loss_reg_weight * l_reg
        return losses

    @torch.no_grad()
    def predict(self, preds: list[dict[str, torch.Tensor]],
                grid: Optional[BEVGrid] = None) -> list[dict[str, torch.Tensor]]:
        """Decode to per-sample dicts {bboxes_3d [N, 7], scores_3d [N], labels_3d [N]} (CPU tensors)."""
        cfg = self.test_cfg
        n_cls = len(self.class_names)
        nms_thr = _per_class(cfg["nms_thr"], n_cls, "nms_thr")
        rect = None if cfg["iou_rectifier"] is None else _per_class(cfg["iou_rectifier"], n_cls, "iou_rectifier")
        radius = None if cfg["circle_min_radius"] is None else _per_class(cfg["circle_min_radius"], n_cls,
                                                                          "circle_min_radius")
        bsz = preds[0]["hm"].shape[0]
        per_sample: list[list[tuple]] = [[] for _ in range(bsz)]
        for t_i, p in enumerate(preds):
            p = {k: v.float() for k, v in p.items()}
            hm = torch.sigmoid(p["hm"])
            _, nc, h, w = hm.shape
            k = min(int(cfg["topk"]), nc * h * w)
            scores, idx = hm.reshape(bsz, -1).topk(k, dim=1)
            cls_local = idx // (h * w)
            pix = idx % (h * w)
            ys, xs = (pix // w).float(), (pix % w).float()
            boxes = self._decode_boxes(p, ys, xs, pix, grid)
            labels = self.task_labels[t_i].to(hm.device)[cls_local]
            above = scores > cfg["score_thresh"]        # on the raw heat-map score, before the rectification
            if self.with_iou and rect is not None:
                iou = ((_gather(p["iou"], pix)[..., 0] + 1) / 2).clamp(0, 1)
                alpha = torch.tensor(rect, device=hm.device)[labels]
                scores = scores.pow(1 - alpha) * iou.pow(alpha)
            for b in range(bsz):
                per_sample[b].append(self._filter_nms(boxes[b], scores[b], labels[b], above[b], nms_thr, radius))
        results = []
        for parts in per_sample:
            bx = torch.cat([q[0] for q in parts])
            sc = torch.cat([q[1] for q in parts])
            lb = torch.cat([q[2] for q in parts])
            order = sc.argsort(descending=True)
            results.append(dict(bboxes_3d=bx[order].cpu(), scores_3d=sc[order].cpu(), labels_3d=lb[order].cpu()))
        return results

    def _filter_nms(self, boxes, scores, labels, keep, nms_thr, radius):
        """keep [K] bool: the candidates whose raw score passed ``score_thresh``; then range limit and NMS."""
        cfg = self.test_cfg
        keep = keep.clone()
        lim = cfg["post_center_limit_range"]
        if lim is not None:
            keep &= (boxes[:, 0] >= lim[0]) & (boxes[:, 1] >= lim[1]) & (boxes[:, 2] >= lim[2])
            keep &= (boxes[:, 0] <= lim[3]) & (boxes[:, 1] <= lim[4]) & (boxes[:, 2] <= lim[5])
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if cfg["nms_type"] is None or boxes.shape[0] == 0:
            sel = scores.argsort(descending=True)[:cfg["post_max_size"]]
            return boxes[sel], scores[sel], labels[sel]
        groups = [labels == c for c in labels.unique()] if (cfg["nms_per_class"] or cfg["nms_type"] == "circle") \
            else [torch.ones_like(labels, dtype=torch.bool)]
        kept = []
        for g in groups:
            gi = g.nonzero()[:, 0]
            c = int(labels[gi[0]])
            if cfg["nms_type"] == "circle":
                if radius is None:
                    raise ValueError("CenterHead: nms_type='circle' needs test_cfg.circle_min_radius")
                order = scores[gi].argsort(descending=True)[:cfg["pre_max_size"]]
                k = circle_nms(boxes[gi][order], scores[gi][order], radius[c], cfg["post_max_size"])
                kept.append(gi[order][k])
            elif cfg["nms_type"] == "rotate":
                k = nms_rotated(boxes[gi], scores[gi], nms_thr[c], cfg["pre_max_size"], cfg["post_max_size"])
                kept.append(gi[k])
            else:
                raise ValueError(f"CenterHead: test_cfg.nms_type must be 'rotate', 'circle' or None, "
                                 f"got {cfg['nms_type']!r}")
        sel = torch.cat(kept)
        sel = sel[scores[sel].argsort(descending=True)][:cfg["post_max_size"]]
        return boxes[sel], scores[sel], labels[sel]
