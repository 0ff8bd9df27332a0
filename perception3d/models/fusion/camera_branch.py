"""SparseFusion's camera branch (Xie et al., ICCV 2023, Sec. 3.1 / 3.3): image features → per-level 2D class heat
maps → top-K image queries → one decoder layer (self-attention over the queries, cross-attention to the features of
the query's own camera) → per-instance monocular 3D regression → the *disentangled view transform* into LiDAR
candidates.

* 2D heat map per pyramid level ``Ŝ_l = σ(Conv(ConvLNReLU(F_l)))``, Gaussian targets at each visible object's
  projected centre; top-K over (camera, level, class, pixel) after a 3×3 local-max NMS; query = feature at the peak
  + ``img_class_encoding(one-hot)``; position = the normalised pixel ``(u / w_l, v / h_l)``; decoder: self-attention
  among the queries of one camera, multi-scale deformable attention into that camera's pyramid (the authors'
  ``ImageTransformer_Cam_3D_MS``).
* regression per query (camera frame): ``center_2d`` offset (normalised pixels), ``depth`` (log metres), ``dim``
  (log dx, dy, dz), ``rot`` (heading unit vector in the camera x–z plane), ``vel`` (x–z), ``cls``.
* :class:`ViewTransformer`: geometry moves explicitly with the calibration
  (:func:`~perception3d.models.fusion.view_transform.camera_candidates_to_lidar`: ``p = R⁻¹(K⁻¹[u d, v d, d]ᵀ − t)``),
  semantics are re-encoded by :class:`~perception3d.models.fusion.view_transform.CameraSE` conditioned on the camera
  parameters, then a self-attention layer over the image candidates with their LiDAR-frame positions refines
  them (Sec. 3.3, "disentangled instance-level transformation").
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.models.fusion.layers import (BOX_HEADS, DeformableDecoderLayer, PositionEmbeddingLearned,
                                               PredictionHeads, ProjectionLayerNorm, QueryDecoderLayer,
                                               heatmap_head, sigmoid_focal_loss)
from perception3d.models.fusion.view_transform import (CameraSE, camera_candidates_to_lidar, camera_info_vector,
                                                       lidar_boxes_to_camera_candidates)
from perception3d.models.heads.center_head import draw_gaussian, focal_loss_centernet

__all__ = ["CameraBranch", "ViewTransformer", "IMG_HEADS", "camera_targets"]

#: the authors' ``heads2d`` (center_2d, depth_2d, dim_2d, rot_2d, vel_2d: 3 layers without norm; cls: 2 with LN)
IMG_HEADS = dict(center_2d=(2, 3, None), depth=(1, 3, None), dim=(3, 3, None), rot=(2, 3, None),
                 vel=(2, 3, None))


def camera_targets(gt_boxes: torch.Tensor, cam2img: torch.Tensor, lidar2cam: torch.Tensor, img_size: Sequence[int],
                   min_depth: float = 0.5):
    """The image targets of one sample: every (camera, box) whose gravity centre projects inside the image, in
    front of the camera. ``gt_boxes`` [M, 9], ``cam2img`` [V, 3, 3], ``lidar2cam`` [V, 4, 4] →
    ``(t, c2d, view, box)``: ``t`` the :func:`lidar_boxes_to_camera_candidates` dict ([V, M, ...]), ``c2d``
    [V, M, 2] normalised centres (u / W, v / H), and the index pairs ``view`` [T], ``box`` [T] of the targets."""
    v = cam2img.shape[0]
    t = lidar_boxes_to_camera_candidates(gt_boxes[None].expand(v, -1, -1).float(), cam2img[:, None].float(),
                                         lidar2cam[:, None].float())
    hi, wi = img_size
    c2d = t["center_2d"] / torch.tensor([wi, hi], device=gt_boxes.device, dtype=torch.float32)
    vis = (t["depth"] > min_depth) & (c2d >= 0).all(-1) & (c2d < 1).all(-1)
    vv, mm = vis.nonzero(as_tuple=True)
    return t, c2d, vv, mm


class CameraBranch(nn.Module):
    """Image queries and their monocular 3D boxes.

    ``forward(feats, img_size, cam2img, lidar2cam)``: ``feats`` list of [B·V, C, h_l, w_l] (levels), ``img_size``
    (H, W) of the input images, ``cam2img`` [B, V, 3, 3], ``lidar2cam`` [B, V, 4, 4] →
    dict ``feat`` [B, C, K], ``view`` [B, K], ``level`` [B, K], ``pos2d`` [B, K, 2] (normalised pixels),
    ``pred`` {cls [B, n, K], center_2d, depth, dim, rot, vel}, ``dense_heatmaps`` list of [B·V, n, h_l, w_l],
    ``boxes`` [B, K, 9] the LiDAR-frame boxes of the geometric transform, ``cam_info`` [B, 16, K],
    ``query_score`` [B, n, K]: 0.5 × the 2D heat-map peak of each query on its class where the decoder's class
    (``argmax cls``) agrees, else 0 (the authors' ``img_query_heatmap_score``).
    """

    def __init__(self, channels: int, num_classes: int, num_levels: int, num_queries: int = 200,
                 num_heads: int = 8, ffn_channels: int = 256, dropout: float = 0.1, nms_kernel: int = 3,
                 num_points: int = 4):
        super().__init__()
        self.num_classes, self.num_queries, self.nms_kernel = num_classes, int(num_queries), int(nms_kernel)
        self.heatmap_heads = nn.ModuleList(heatmap_head(channels, num_classes, "ln") for _ in range(num_levels))
        self.level_pos = nn.Parameter(torch.randn(num_levels, channels) * 0.02)
        self.class_encoding = nn.Conv1d(num_classes, channels, 1)
        self.decoder = DeformableDecoderLayer(channels, num_heads, ffn_channels, dropout, num_levels, num_points)
        self.heads = PredictionHeads(channels, dict(IMG_HEADS, cls=(num_classes, 2, "ln")))

    def forward(self, feats: Sequence[torch.Tensor], img_size: Sequence[int], cam2img: torch.Tensor,
                lidar2cam: torch.Tensor) -> Dict[str, torch.Tensor]:
        b, v = cam2img.shape[:2]
        c = feats[0].shape[1]
        feats = [f + self.level_pos[i][None, :, None, None] for i, f in enumerate(feats)]
        dense = [hd(f) for hd, f in zip(self.heatmap_heads, feats)]
        # flatten every level as (view, class, pixel) per sample, then one top-K over all of them
        scores, keys, meta = [], [], []
        for f, d in zip(feats, dense):
            h, w = f.shape[-2:]
            hm = d.detach().sigmoid()
            pad = self.nms_kernel // 2
            hm = hm * (hm == F.max_pool2d(hm, self.nms_kernel, 1, pad)) if self.nms_kernel > 1 else hm
            scores.append(hm.reshape(b, v * self.num_classes * h * w))
            keys.append(f.reshape(b, v, c, h * w).permute(0, 2, 1, 3).reshape(b, c, v * h * w))
            meta.append((h, w))
        allscore = torch.cat(scores, 1)
        k = min(self.num_queries, allscore.shape[1])
        peak, top = allscore.topk(k, dim=1)
        sizes = torch.tensor([s.shape[1] for s in scores], device=top.device)
        starts = torch.cumsum(sizes, 0) - sizes
        level = torch.searchsorted(torch.cumsum(sizes, 0), top, right=True)
        r = top - starts[level]
        hw = torch.tensor([h * w for h, w in meta], device=top.device)[level]
        wl = torch.tensor([w for _, w in meta], device=top.device)[level]
        hl = torch.tensor([h for h, _ in meta], device=top.device)[level]
        view = r // (self.num_classes * hw)
        cls = (r % (self.num_classes * hw)) // hw
        pix = r % hw
        key_sizes = torch.tensor([v * h * w for h, w in meta], device=top.device)
        key_starts = torch.cumsum(key_sizes, 0) - key_sizes
        kidx = key_starts[level] + view * hw + pix
        allkeys = torch.cat(keys, 2)
        q = allkeys.gather(2, kidx[:, None].expand(b, c, k))
        one_hot = F.one_hot(cls, self.num_classes).permute(0, 2, 1).float()             # [B, n, K]
        q = q + self.class_encoding(one_hot)
        pos2d = torch.stack([((pix % wl).float() + 0.5) / wl, ((pix // wl).float() + 0.5) / hl], -1)
        q = self.decoder(q, pos2d, feats, view)                                 # reads its own camera only
        pred = self.heads(q)
        # geometric half of the disentangled transform (explicit, through the calibration)
        bi = torch.arange(b, device=top.device)[:, None].expand(b, k)
        k_cam, l2c = cam2img[bi, view].float(), lidar2cam[bi, view].float()
        uv = (pos2d + pred["center_2d"].transpose(1, 2)) * torch.tensor([img_size[1], img_size[0]],
                                                                        device=q.device, dtype=q.dtype)
        depth = pred["depth"][:, 0].clamp(max=6).exp()
        dims = pred["dim"].transpose(1, 2).clamp(max=6).exp()
        heading = F.normalize(pred["rot"].transpose(1, 2), dim=-1, eps=1e-6)
        geo = camera_candidates_to_lidar(uv, depth, dims, heading, pred["vel"].transpose(1, 2), k_cam, l2c)
        cam_info = camera_info_vector(k_cam, l2c).transpose(1, 2)
        # the authors' img_query_heatmap_score: the 2D peak on the query's class, kept only where the decoder's
        # class agrees with it, halved (decoding multiplies it into the fused score of a camera candidate)
        agree = F.one_hot(pred["cls"].detach().argmax(1), self.num_classes).permute(0, 2, 1).float()
        query_score = 0.5 * peak[:, None] * one_hot * agree
        return dict(feat=q, view=view, level=level, labels=cls, pos2d=pos2d, pred=pred, dense_heatmaps=dense,
                    boxes=geo["boxes"], cam_info=cam_info, uv=uv, query_score=query_score)

    def loss(self, out: Dict[str, torch.Tensor], gt_boxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
             img_size: Sequence[int], cam2img: torch.Tensor, lidar2cam: torch.Tensor,
             heatmap_weight: float = 0.1, bbox_weight: float = 0.25) -> Dict[str, torch.Tensor]:
        """Camera-frame supervision: each gt box whose centre projects into a camera is an image target
        (:func:`lidar_boxes_to_camera_candidates`); queries of that camera are Hungarian-matched to it (cost:
        focal class + normalised 2D centre distance); focal classification, L1 on (2D centre, log depth, log size,
        heading, 0.2 · velocity), Gaussian focal loss of the 2D heat maps (weight 0.1)."""
        from scipy.optimize import linear_sum_assignment
        pred, b = out["pred"], cam2img.shape[0]
        hi, wi = img_size
        logits = pred["cls"].transpose(1, 2)
        cls_t = torch.zeros_like(logits)
        reg = logits.new_zeros(())
        n_pos = 0
        hm_loss = logits.new_zeros(())
        hm_targets = [torch.zeros_like(d) for d in out["dense_heatmaps"]]
        for i in range(b):
            gb, gl = gt_boxes[i], gt_labels[i]
            if len(gb) == 0:
                continue
            t, c2d, vv, mm = camera_targets(gb, cam2img[i], lidar2cam[i], img_size)
            v = cam2img.shape[1]
            if len(vv) == 0:
                continue
            for lvl, d in enumerate(out["dense_heatmaps"]):
                h, w = d.shape[-2:]
                for a, m in zip(vv.tolist(), mm.tolist()):
                    f = float(cam2img[i, a, 0, 0]) * w / wi
                    rad = max(1, int(0.5 * f * float(gb[m, 3:5].max()) / float(t["depth"][a, m]) / 3))
                    draw_gaussian(hm_targets[lvl][i * v + a, int(gl[m])], int(c2d[a, m, 0] * w),
                                  int(c2d[a, m, 1] * h), min(rad, 8))
            p_view, p = out["view"][i], logits[i].detach().sigmoid()
            cost = -(p[:, gl[mm]] + 1e-6).log() * 0.15 + 0.25 * torch.cdist(
                (out["pos2d"][i] + pred["center_2d"][i].T).detach(), c2d[vv, mm], p=1)
            cost = cost + 1e4 * (p_view[:, None] != vv[None]).float()
            r, cc = linear_sum_assignment(cost.cpu().numpy())
            r, cc = torch.as_tensor(r, device=gb.device), torch.as_tensor(cc, device=gb.device)
            ok = p_view[r] == vv[cc]
            r, cc = r[ok], cc[ok]
            if len(r) == 0:
                continue
            a, m = vv[cc], mm[cc]
            cls_t[i, r, gl[m]] = 1.0
            pc = (out["pos2d"][i, r] + pred["center_2d"][i, :, r].T)
            heading = F.normalize(pred["rot"][i, :, r].T, dim=-1, eps=1e-6)
            # centre weight 20 × bbox weight 0.25 = the authors' loss_center_2d weight 5.0
            reg = reg + (pc - c2d[a, m]).abs().sum() * 20.0 \
                + (pred["depth"][i, 0, r] - t["depth"][a, m].clamp(min=1e-2).log()).abs().sum() \
                + (pred["dim"][i, :, r].T - t["dims"][a, m].clamp(min=1e-2).log()).abs().sum() \
                + (heading - t["heading_cam"][a, m]).abs().sum() \
                + 0.2 * (pred["vel"][i, :, r].T - t["velocity_cam"][a, m]).abs().sum()
            n_pos += len(r)
        for d, tgt in zip(out["dense_heatmaps"], hm_targets):
            hm_loss = hm_loss + heatmap_weight * focal_loss_centernet(d, tgt)
        norm = max(n_pos, 1)
        return dict(loss_img_cls=sigmoid_focal_loss(logits, cls_t) / norm, loss_img_bbox=bbox_weight * reg / norm,
                    loss_img_heatmap=hm_loss / len(hm_targets))


class ViewTransformer(nn.Module):
    """Semantic half of the disentangled transform + refinement in the LiDAR frame.

    ``forward(feat [B, C, K], boxes [B, K, 9] (geometric transform), cam_info [B, 16, K], pos2d [B, K, 2],
    pc_range, cell)`` → dict ``feat`` [B, C, K], ``pos`` [B, K, 2] (BEV cells), ``pred`` (LiDAR box heads,
    centre absolute in cells): ``f' = CameraSE(f, c)``, ``f'' = LN(Linear(f'))``, then one self-attention layer
    whose positional encoding sees the candidate's 9-d geometry (LiDAR-frame BEV position, height, heading,
    velocity, and its pixel — the authors' ``PositionEmbeddingLearnedwoNorm(9)``), and the box heads predict a
    residual to the geometric box.
    """

    def __init__(self, channels: int, num_classes: int, num_heads: int = 8, ffn_channels: int = 256,
                 dropout: float = 0.1, use_camera_se: bool = True):
        super().__init__()
        self.camera_se = CameraSE(channels) if use_camera_se else None
        self.projection = ProjectionLayerNorm(channels)
        self.decoder = QueryDecoderLayer(channels, num_heads, ffn_channels, dropout,
                                         PositionEmbeddingLearned(9, channels, norm=False),
                                         PositionEmbeddingLearned(9, channels, norm=False), cross_only=True)
        self.heads = PredictionHeads(channels, dict(BOX_HEADS, heatmap=num_classes))

    def forward(self, feat: torch.Tensor, boxes: torch.Tensor, cam_info: torch.Tensor, pos2d: torch.Tensor,
                pc_range: Sequence[float], cell: Sequence[float]) -> Dict[str, torch.Tensor]:
        if self.camera_se is not None:
            feat = self.camera_se(feat, cam_info)
        feat = self.projection(feat)
        g = boxes.detach()
        bev = torch.stack([(g[..., 0] - pc_range[0]) / cell[0], (g[..., 1] - pc_range[1]) / cell[1]], -1)
        span = torch.tensor([(pc_range[3] - pc_range[0]) / cell[0], (pc_range[4] - pc_range[1]) / cell[1]],
                            device=g.device)
        z = (g[..., 2:3] + g[..., 5:6] / 2 - pc_range[2]) / (pc_range[5] - pc_range[2])
        pos = torch.cat([bev / span, z, torch.sin(g[..., 6:7]), torch.cos(g[..., 6:7]), g[..., 7:9] / 10, pos2d],
                        -1).clamp(-2, 3)
        feat = self.decoder(feat, feat, pos, pos)
        pred = self.heads(feat)
        pred["center"] = pred["center"] + bev.transpose(1, 2)
        pred["height"] = pred["height"] + (g[..., 2] + g[..., 5] / 2)[:, None]
        pred["dim"] = pred["dim"] + g[..., 3:6].clamp(min=1e-2).log().transpose(1, 2)
        return dict(feat=feat, pos=pred["center"].detach().transpose(1, 2), pred=pred)
