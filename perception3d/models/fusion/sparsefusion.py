"""SparseFusion (Xie et al., "SparseFusion: Fusing Multi-Modal Sparse Representations for Multi-Sensor 3D Object
Detection", ICCV 2023; authors' code yichen928/SparseFusion on mmdet3d / TransFusion).

Pipeline (paper Fig. 2): LiDAR points → any of our LiDAR backbones → BEV; images → ResNet + FPN;
cross-modality transfer (Sec. 3.2: semantic image → BEV, geometric depth → image; each switchable);
LiDAR branch (TransFusion-L head, K = 200 candidates) and camera branch (K = 200 image candidates → disentangled
view transform into the LiDAR frame, Sec. 3.3); **sparse fusion** (Sec. 3.4): one self-attention layer over the
union of the 2K candidates (``Q = [LN(W_L f_L); LN(W_C f_C)]``, ``Q' = SelfAttn(Q + PE(pos))`` — Eq. 6), prediction
heads, Hungarian-matched training of every stage (focal class, L1 box code, IoU in the matching cost).
The fused candidates are also returned as a :class:`~perception3d.sparse.SparseTensor` (BEV cells) for users.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from perception3d.models.data_preprocessor import Det3DDataPreprocessor
from perception3d.models.detectors.centerpoint import to_box_tensor
from perception3d.models.fusion.camera_branch import CameraBranch, ViewTransformer, camera_targets
from perception3d.models.fusion.candidates import candidates_to_sparse
from perception3d.models.fusion.layers import (BOX_HEADS, PositionEmbeddingLearned, PredictionHeads,
                                               ProjectionLayerNorm, QueryDecoderLayer, decode_boxes,
                                               set_prediction_loss)
from perception3d.models.fusion.lidar_branch import TransFusionLiDARBranch
from perception3d.models.fusion.transfer import GeometricTransfer, SemanticTransfer
from perception3d.registry import MODELS
from perception3d.structures.bev_grid import BEVGrid

__all__ = ["SparseFusionHead", "SparseFusion", "SparseFusionDataPreprocessor", "camera_visible"]


@MODELS.register_module()
class SparseFusionHead(nn.Module):
    """Everything after the two backbones.

    Args:
        in_channels: BEV channels of the LiDAR backbone; img_channels: FPN channels; channels: hidden width (128).
        num_classes, num_queries (LiDAR, 200), num_img_queries (camera, 200), num_img_levels: FPN levels used.
        pc_range (x0, y0, z0, x1, y1, z1).
        voxel_size (vx, vy), out_size_factor: optional. Inside :class:`SparseFusion` the head reads the BEV map's
            cell size and origin off the LiDAR sparse tensor (:class:`~perception3d.structures.BEVGrid`, as
            CenterHead); a config that still restates both is checked against that grid (``ValueError`` on a
            mismatch). A head used on its own needs them (metres of a cell = voxel × stride).
        use_camera: False = TransFusion-L (LiDAR branch only, the ablation baseline).
        semantic_transfer / geometric_transfer / view_se: the ablation switches (Sec. 3.2, CameraSE of Sec. 3.3).
        semantic_level: which FPN level the semantic transfer samples; z_ref: its reference height (m).
        no_nms_classes: class indices without heat-map NMS (nuScenes: pedestrian, traffic_cone).
        code_weights, loss weights: the authors' values.
        semantic_residual: the semantic transfer corrects the LiDAR heat map instead of replacing it
            (:class:`SemanticTransfer` ``residual``; off = the authors').
        init_fusion_from_lidar: when a checkpoint without fusion weights is loaded (the fusion stage's
            ``load_from`` = a TransFusion-L checkpoint), the fusion prediction heads start as copies of the loaded
            LiDAR heads and the LiDAR candidates' projection (``proj_lidar``) as identity, so the fused
            predictions start near the LiDAR model's instead of from random heads (a deviation for short fusion
            stages; off = the authors', whose fusion heads start random).
        fusion_residual: the fusion heads predict a correction to each candidate's own prediction (the LiDAR
            decoder's for a LiDAR candidate, the view transformer's for a camera one: class logits, height, log
            sizes, yaw, velocity; the centre is already an offset to the candidate's position), with the last
            layer of every fusion head starting at zero. A fusion stage loaded from a TransFusion-L checkpoint then
            starts with the LiDAR model's predictions for its LiDAR candidates (as the view transformer refines
            the geometric camera box); without it the fused output of a frozen, trained LiDAR side starts near
            zero mAP (0.000 L1 mAP on the mini data, ``docs/model_zoo.md``). An alternative to
            ``init_fusion_from_lidar`` (both on is an error); off = the authors'.
        camera_only: the camera pre-training stage: only the camera side runs (geometric transfer, camera branch,
            view transformer; no LiDAR branch, semantic transfer or fusion layer), trained with the camera branch's
            losses and the view transformer's set loss, and the view transformer's boxes are the prediction (a
            monocular 3D detector). The LiDAR modules stay in the model (the checkpoint has the fusion model's
            layout) but are not run. Needs ``use_camera``, and ``voxel_size`` / ``out_size_factor`` (no BEV map
            gives the cell size).
        query_score_decoding: decode as the authors' ``get_bboxes`` (TransFusion's): each candidate's box score is
            ``σ(class logit)`` times the heat-map peak its query was initialised from, on the query's class only
            (other classes score 0): for a LiDAR candidate the BEV heat map — the semantic transfer's when it is
            on, so image evidence reaches the score of the LiDAR candidates a camera sees —, for a camera candidate
            0.5 × its 2D heat-map peak where the image decoder's class agrees (on, the default = the authors').
            Off: ``σ(class logit)`` alone (the older tables of ``docs/model_zoo.md``). Decoding only: training
            is the same either way. (The camera pre-training stage's view-transformer boxes are always scored by
            ``σ(class logit)``.)
        img_heatmap_weight: weight of the camera branch's 2D heat-map loss (the authors' 0.1, for an image backbone
            pre-trained on nuImages). From scratch, 1.0 makes the camera pre-training stage a much better 2D
            detector on the mini data (``docs/model_zoo.md``).
    """

    def __init__(self, in_channels: int, num_classes: int, pc_range: Sequence[float],
                 voxel_size: Optional[Sequence[float]] = None, out_size_factor: Optional[int] = None,
                 channels: int = 128, img_channels: int = 256, num_queries: int = 200,
                 num_img_queries: int = 200, num_img_levels: int = 4, num_heads: int = 8, ffn_channels: int = 256,
                 dropout: float = 0.1, use_camera: bool = True, semantic_transfer: bool = True,
                 geometric_transfer: bool = True, view_se: bool = True, semantic_level: int = 1,
                 z_ref: float = 0.0, no_nms_classes: Sequence[int] = (),
                 code_weights: Sequence[float] = (1, 1, 1, 1, 1, 1, 1, 1, 0.2, 0.2),
                 max_det: int = 200, score_threshold: float = 0.0, semantic_residual: bool = False,
                 init_fusion_from_lidar: bool = False, fusion_residual: bool = False, camera_only: bool = False,
                 query_score_decoding: bool = True, img_heatmap_weight: float = 0.1):
        super().__init__()
        if camera_only and not use_camera:
            raise ValueError("SparseFusionHead: camera_only (the camera pre-training stage) needs use_camera=True")
        if camera_only and (voxel_size is None or out_size_factor is None):
            raise ValueError("SparseFusionHead: camera_only runs no LiDAR backbone, so the head needs voxel_size and "
                             "out_size_factor for the BEV cell of its box code")
        self.camera_only = bool(camera_only)
        if fusion_residual and init_fusion_from_lidar:
            raise ValueError("SparseFusionHead: fusion_residual (fusion heads start at zero and correct each "
                             "candidate's own prediction) and init_fusion_from_lidar (fusion heads start as "
                             "copies of the LiDAR heads) are alternatives; turn one off")
        self.pc_range = [float(v) for v in pc_range]
        self.cell = None  # metres of one BEV cell (x, y): from the config, else from the first grid forward() gets
        if voxel_size is not None and out_size_factor is not None:
            self.cell = [float(voxel_size[0]) * int(out_size_factor), float(voxel_size[1]) * int(out_size_factor)]
        self.num_classes, self.use_camera = int(num_classes), bool(use_camera)
        self.num_img_levels, self.semantic_level = int(num_img_levels), int(semantic_level)
        self.code_weights, self.max_det, self.score_threshold = list(code_weights), max_det, score_threshold
        self.query_score_decoding = bool(query_score_decoding)
        self.img_heatmap_weight = float(img_heatmap_weight)
        self.lidar = TransFusionLiDARBranch(in_channels, num_classes, channels, num_queries, num_heads, ffn_channels,
                                            dropout, 3, no_nms_classes)
        if not self.use_camera:
            return
        self.img_transfer = GeometricTransfer(img_channels, channels, num_img_levels, enabled=geometric_transfer)
        self.semantic = (SemanticTransfer(channels, num_classes, self.pc_range, self.cell, z_ref,
                                          residual=semantic_residual) if semantic_transfer else None)
        self.camera = CameraBranch(channels, num_classes, num_img_levels, num_img_queries, num_heads, ffn_channels,
                                   dropout)
        self.view_transformer = ViewTransformer(channels, num_classes, num_heads, ffn_channels, dropout, view_se)
        self.proj_lidar = ProjectionLayerNorm(channels)
        self.proj_img = ProjectionLayerNorm(channels)
        pe = PositionEmbeddingLearned(2, channels)
        self.fusion = QueryDecoderLayer(channels, num_heads, ffn_channels, dropout, pe, pe, cross_only=True)
        self.fusion_heads = PredictionHeads(channels, dict(BOX_HEADS, heatmap=num_classes))
        self.fusion_residual = bool(fusion_residual)
        if self.fusion_residual:  # corrections start at zero: the fused output starts as the candidates' own
            for name in self.fusion_heads.names:
                nn.init.zeros_(getattr(self.fusion_heads, name)[-1].weight)
                nn.init.zeros_(getattr(self.fusion_heads, name)[-1].bias)
        self.fusion_initialised_from_lidar = False
        if init_fusion_from_lidar:
            self._register_load_state_dict_pre_hook(self._init_fusion_from_lidar)

    def _init_fusion_from_lidar(self, state_dict, prefix, *args) -> None:
        """Load-time hook (``init_fusion_from_lidar``): a state dict with LiDAR heads but no fusion heads gets
        ``fusion_heads.* = lidar.heads.*`` and an identity ``proj_lidar.proj``, in place, before loading."""
        keys = [k for k in state_dict if k.startswith(prefix)]
        src = prefix + "lidar.heads."
        if any(k.startswith(prefix + "fusion_heads.") for k in keys) or not any(k.startswith(src) for k in keys):
            return
        for k in keys:
            if k.startswith(src):
                state_dict[prefix + "fusion_heads." + k[len(src):]] = state_dict[k].clone()
        if not any(k.startswith(prefix + "proj_lidar.") for k in keys):
            lin = self.proj_lidar.proj
            state_dict[prefix + "proj_lidar.proj.weight"] = torch.eye(lin.out_features, lin.in_features)
            state_dict[prefix + "proj_lidar.proj.bias"] = torch.zeros(lin.out_features)
        self.fusion_initialised_from_lidar = True

    def use_grid(self, grid: BEVGrid) -> None:
        """Take the BEV map's cell size from ``grid``; a cell size the config restated must agree with it, and
        the grid's origin with ``pc_range``'s corner (``ValueError`` naming both otherwise)."""
        got, corner = [float(grid.cell[0]), float(grid.cell[1])], self.pc_range[:2]
        if self.cell is not None and not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
                                             for a, b in zip(self.cell, got)):
            raise ValueError(f"SparseFusionHead: the config's voxel_size × out_size_factor give {tuple(self.cell)} m "
                             f"cells, but the BEV map the backbone produced has {tuple(got)} m cells; drop "
                             f"voxel_size / out_size_factor from the head's config to use the backbone's grid")
        if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(corner, grid.origin)):
            raise ValueError(f"SparseFusionHead: pc_range's corner {tuple(corner)} is not the BEV map's origin "
                             f"{tuple(grid.origin)} (the voxel encoder's point_cloud_range)")
        if self.cell is None:
            self.cell = got
        if self.use_camera and self.semantic is not None:
            self.semantic.cell = list(self.cell)

    def forward(self, bev: torch.Tensor, img_feats: Optional[Sequence[torch.Tensor]] = None,
                calib: Optional[Dict[str, Any]] = None, grid: Optional[BEVGrid] = None) -> Dict[str, Any]:
        """``bev`` [B, C_in, H, W]; ``img_feats`` FPN levels [B·V, C_img, h, w]; ``calib``: ``cam2img`` [B, V, 3, 3],
        ``lidar2cam`` [B, V, 4, 4], ``lidar2img`` [B, V, 4, 4], ``img_size`` (H, W), ``sparse_depth``
        [B·V, 2, H/4, W/4] (geometric transfer); ``grid``: the BEV map's geometry (:meth:`use_grid`).
        Returns the branch outputs; ``final`` = the prediction used."""
        if grid is not None:
            self.use_grid(grid)
        if self.cell is None:
            raise ValueError("SparseFusionHead: no BEV grid: call it through SparseFusion (which passes grid=) or "
                             "give the head voxel_size and out_size_factor")
        out: Dict[str, Any] = {}
        if not self.use_camera or img_feats is None:
            out["lidar"] = self.lidar(bev)
            out["final"] = out["lidar"]["pred"]
            return out
        feats = self.img_transfer(list(img_feats)[: self.num_img_levels], calib.get("sparse_depth"))
        if self.camera_only:
            cam = out["camera"] = self.camera(feats, calib["img_size"], calib["cam2img"], calib["lidar2cam"])
            out["view"] = self.view_transformer(cam["feat"], cam["boxes"], cam["cam_info"], cam["pos2d"],
                                                self.pc_range, self.cell)
            out["final"] = out["view"]["pred"]
            return out
        hm_fn = None
        if self.semantic is not None:
            def hm_fn(f):
                base = self.lidar.heatmap_head(f) if self.semantic.residual else None
                return self.semantic(f, feats[self.semantic_level], calib["lidar2img"], calib["img_size"], base)
        lid = out["lidar"] = self.lidar(bev, hm_fn)
        cam = out["camera"] = self.camera(feats, calib["img_size"], calib["cam2img"], calib["lidar2cam"])
        view = out["view"] = self.view_transformer(cam["feat"], cam["boxes"], cam["cam_info"], cam["pos2d"],
                                                   self.pc_range, self.cell)
        # sparse fusion (Sec. 3.4, Eq. 6): one self-attention layer over the union of the candidates
        q = torch.cat([self.proj_lidar(lid["feat"]), self.proj_img(view["feat"])], 2)
        pos = torch.cat([lid["pos"], view["pos"]], 1)
        q = self.fusion(q, q, pos, pos)
        pred = self.fusion_heads(q)
        if self.fusion_residual:  # each candidate's own prediction + the fusion layer's correction
            for k in pred:
                if k != "center":
                    pred[k] = pred[k] + torch.cat([lid["pred"][k], view["pred"][k]], 2).detach()
        pred["center"] = pred["center"] + pos.transpose(1, 2)
        out["fused_feat"], out["fused_pos"], out["final"] = q, pos, pred
        return out

    def candidates(self, out: Dict[str, Any], bev_shape: Sequence[int]):
        """The fused (or LiDAR) candidates as ``(SparseTensor (b, y, x), exact positions [N, 2])``."""
        feat = out.get("fused_feat", out["lidar"]["feat"])
        pos = out.get("fused_pos", out["lidar"]["pos"])
        return candidates_to_sparse(pos, feat, bev_shape, (self.cell[1], self.cell[0]),
                                    (self.pc_range[1], self.pc_range[0]))

    def loss(self, out: Dict[str, Any], gt_boxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
             calib: Optional[Dict[str, Any]] = None) -> Dict[str, torch.Tensor]:
        """All stages' losses (the authors train LiDAR, image, view and fusion predictions jointly)."""
        args = (self.pc_range, self.cell, self.code_weights)
        losses = {}
        # the view transformer's candidates come from the images: they are matched to the boxes a camera sees
        # (centre inside an image), not to the boxes behind the rig, which no camera candidate can find
        seen = camera_visible(gt_boxes, calib) if "view" in out else None
        for name, pred, gts in (
                ("lidar", out.get("lidar", {}).get("pred"), (gt_boxes, gt_labels)),
                ("view", out.get("view", {}).get("pred"),
                 None if seen is None else ([b[m] for b, m in zip(gt_boxes, seen)],
                                            [l[m] for l, m in zip(gt_labels, seen)])),
                ("fusion", out["final"] if "fused_feat" in out else None, (gt_boxes, gt_labels))):
            if pred is None:
                continue
            l = set_prediction_loss(pred, *gts, *args)
            losses[f"loss_{name}_cls"], losses[f"loss_{name}_bbox"] = l["loss_cls"], l["loss_bbox"]
        if "lidar" in out:
            losses["loss_heatmap"] = self.lidar.heatmap_loss(out["lidar"]["dense_heatmap"], gt_boxes, gt_labels,
                                                             self.pc_range, self.cell)
        if "camera" in out:
            losses.update(self.camera.loss(out["camera"], gt_boxes, gt_labels, calib["img_size"], calib["cam2img"],
                                           calib["lidar2cam"], heatmap_weight=self.img_heatmap_weight))
        return losses

    @torch.no_grad()
    def predict(self, out: Dict[str, Any]) -> List[Dict[str, torch.Tensor]]:
        """Top ``max_det`` (query, class) pairs by ``σ(logit)`` (times the query's heat-map peak with
        ``query_score_decoding``) per sample → ``bboxes_3d`` [N, 9], ``scores_3d``,
        ``labels_3d`` (TransFusion's decoding: no NMS, the set loss makes queries one-to-one)."""
        pred = out["final"]
        boxes = decode_boxes(pred, self.pc_range, self.cell)
        scores = pred["heatmap"].sigmoid()                                       # [B, n, P]
        # candidates [0, n_lidar) are the LiDAR branch's, the rest the camera branch's (view-transformed)
        n_lidar = out["lidar"]["feat"].shape[2] if "lidar" in out else 0
        if self.query_score_decoding and "lidar" in out:
            parts = [out["lidar"]["query_score"]] + ([out["camera"]["query_score"]] if "fused_feat" in out else [])
            scores = scores * torch.cat(parts, 2)
        results = []
        for i in range(boxes.shape[0]):
            s = scores[i].reshape(-1)
            k = min(self.max_det, s.numel())
            top, idx = s.topk(k)
            q, lab = idx % scores.shape[2], idx // scores.shape[2]
            keep = top > self.score_threshold
            results.append(dict(bboxes_3d=boxes[i, q[keep]], scores_3d=top[keep], labels_3d=lab[keep],
                                from_camera=q[keep] >= n_lidar))
        return results


def camera_visible(gt_boxes: Sequence[torch.Tensor], calib: Dict[str, Any]) -> List[torch.Tensor]:
    """Per sample, [M] bool: the box's gravity centre projects inside some camera's image, in front of it
    (:func:`~perception3d.models.fusion.camera_branch.camera_targets`)."""
    out = []
    for i, gb in enumerate(gt_boxes):
        seen = torch.zeros(len(gb), dtype=torch.bool, device=gb.device)
        if len(gb):
            _, _, _, mm = camera_targets(gb, calib["cam2img"][i], calib["lidar2cam"][i], calib["img_size"])
            seen[mm] = True
        out.append(seen)
    return out


def _boxes9(x: Any) -> torch.Tensor:
    """gt boxes [M, 7 | 9] (Boxes3D, ndarray, Tensor) → [M, 9] (velocity 0 when absent)."""
    raw = x.tensor if hasattr(x, "tensor") else x
    raw = raw if isinstance(raw, torch.Tensor) else torch.as_tensor(np.asarray(raw, np.float32))
    t = to_box_tensor(raw, 7)
    if raw.ndim == 2 and raw.shape[1] >= 9:  # nuScenes: velocity is NaN where the devkit cannot tell it
        return torch.nan_to_num(raw[:, :9].float(), nan=0.0)
    return torch.cat([t, t.new_zeros(len(t), 2)], 1)


def _chw(im: torch.Tensor) -> torch.Tensor:
    """[V, H, W, 3] (the readers' layout) or [V, 3, H, W] → [V, 3, H, W]."""
    if im.ndim != 4 or 3 not in (im.shape[1], im.shape[-1]):
        raise ValueError(f"SparseFusion: images must be [V, 3, H, W] or [V, H, W, 3], got {tuple(im.shape)}")
    return im if im.shape[1] == 3 else im.permute(0, 3, 1, 2)


def _get(sample: Any, key: str, default=None):
    return sample.get(key, default) if isinstance(sample, dict) else getattr(sample, key, default)


@MODELS.register_module()
class SparseFusionDataPreprocessor(Det3DDataPreprocessor):
    """:class:`Det3DDataPreprocessor` that also un-collates the camera images.

    mmengine's ``pseudo_collate`` transposes each sample's list of V images into V lists over the batch; this puts
    them back per sample as one float tensor [V, H, W, 3] (``data_samples[i]["images"]``), so the detector sees the
    layout the readers produce whatever B and V are.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        samples = data.get("data_samples")
        if isinstance(samples, dict) and isinstance(samples.get("images"), (list, tuple)) and samples["images"] \
                and isinstance(samples["images"][0], (list, tuple)):
            per_view = samples["images"]                                    # [V][B] after pseudo_collate
            samples = dict(samples, images=[torch.as_tensor(np.stack([np.asarray(v[i]) for v in per_view]))
                                            for i in range(len(per_view[0]))])
            data = dict(data, data_samples=samples)
        return super().forward(data, training)


#: state-dict prefixes of the camera side (what the camera pre-training stage trains and the fusion stage loads)
CAMERA_PREFIXES = ("img_backbone.", "img_neck.", "head.img_transfer.", "head.camera.", "head.view_transformer.")


@MODELS.register_module()
class SparseFusion(BaseModel):
    """The detector: ``forward(inputs, data_samples, mode)`` as :class:`CenterPoint`'s, plus cameras.

    ``inputs``: ``{"points": [Tensor [N_i, F]], "imgs": [Tensor [V, 3, H, W] or [V, H, W, 3] in [0, 1]]}``;
    the images may instead come as each data sample's ``images`` (the readers' list of [H, W, 3] arrays, packed
    with ``Pack3DDetInputs(keys=[..., "images", "cam2img", "lidar2cam", "sparse_depth"])``); with neither, or a
    sample without cameras (a reader's ``skip_missing_cameras``), the batch runs LiDAR-only — the TransFusion-L
    predictions — with a counted warning. Each data sample carries ``cam2img`` [V, 3, 3],
    ``lidar2cam`` [V, 4, 4]
    (``lidar2img`` is composed when absent), ``sparse_depth`` [V, 2, H/4, W/4] (geometric transfer), and for
    training ``gt_bboxes_3d`` [M, 7 or 9] / ``gt_labels_3d`` [M].

    Args: the LiDAR stages as CenterPoint's (``voxel_encoder``, ``backbone_3d``, ``map_to_bev``, ``backbone_2d``),
        ``img_backbone`` (:class:`ImageResNet`), ``img_neck`` (:class:`ImageFPN`), ``head``
        (:class:`SparseFusionHead`), ``img_mean`` / ``img_std`` (of [0, 1] images; ImageNet's by default).
        ``freeze_lidar``: the fusion stage of the authors' schedule — the LiDAR backbone and the LiDAR detector
        (a pre-trained TransFusion-L, ``load_from``) get no gradients and keep their BatchNorm statistics
        (their ``freeze_lidar_components`` + ``freeze_lidar_detector``).
        ``camera_checkpoint``: a checkpoint of the camera pre-training stage (a model whose head is
        ``camera_only``); :meth:`init_weights` (which the runner calls before ``load_from``) copies its camera
        side (:data:`CAMERA_PREFIXES`: image backbone, FPN, geometric transfer, camera branch, view transformer)
        into this model, so the fusion stage starts from both pre-trained branches: the LiDAR one by
        ``load_from``, the camera one from here. A checkpoint without those tensors is a ``ValueError``.
    """

    def __init__(self, voxel_encoder: dict, head: dict, backbone_3d: Optional[dict] = None,
                 map_to_bev: Optional[dict] = None, backbone_2d: Optional[dict] = None,
                 img_backbone: Optional[dict] = None, img_neck: Optional[dict] = None,
                 img_mean: Sequence[float] = (0.485, 0.456, 0.406), img_std: Sequence[float] = (0.229, 0.224, 0.225),
                 freeze_lidar: bool = False, camera_checkpoint: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor or SparseFusionDataPreprocessor(),
                         init_cfg=init_cfg)
        self.camera_checkpoint = camera_checkpoint
        self.voxel_encoder = MODELS.build(voxel_encoder)
        self.backbone_3d = MODELS.build(backbone_3d) if backbone_3d is not None else None
        self.map_to_bev = MODELS.build(map_to_bev if map_to_bev is not None else dict(type="HeightCompression"))
        self.backbone_2d = MODELS.build(backbone_2d) if backbone_2d is not None else None
        self.img_backbone = MODELS.build(img_backbone) if img_backbone is not None else None
        self.img_neck = MODELS.build(img_neck) if img_neck is not None else None
        self.head = MODELS.build(head)
        self.register_buffer("img_mean", torch.tensor(img_mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(img_std).reshape(1, 3, 1, 1), persistent=False)
        self.freeze_lidar = bool(freeze_lidar)
        self.num_lidar_only_batches = 0  # batches where some sample had no images (counted, warned)
        for m in self._lidar_modules() if self.freeze_lidar else ():
            for p in m.parameters():
                p.requires_grad_(False)

    def init_weights(self) -> None:
        """The modules' own initialisation, then the camera side from ``camera_checkpoint`` when one is given."""
        super().init_weights()
        if self.camera_checkpoint:
            self.load_camera_side(self.camera_checkpoint)

    def load_camera_side(self, path: str) -> List[str]:
        """Copy the camera side (:data:`CAMERA_PREFIXES`) of the checkpoint at ``path`` into this model; returns the
        keys copied. ``ValueError`` naming the file when it lacks one of them or a shape differs."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        state = ckpt.get("state_dict", ckpt)
        own = {k: v for k, v in self.state_dict().items() if k.startswith(CAMERA_PREFIXES)}
        if not own:
            raise ValueError("SparseFusion.load_camera_side: this model has no camera side (use_camera=False)")
        missing = [k for k in own if k not in state]
        wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or wrong:
            raise ValueError(f"{path}: not a camera checkpoint of this model: {len(missing)} camera tensors missing "
                             f"(e.g. {missing[:3]}), {len(wrong)} of another shape (e.g. {wrong[:3]})")
        self.load_state_dict({k: state[k] for k in own}, strict=False)
        return sorted(own)

    def checkpoint_may_lack(self, key: str) -> bool:
        """The fusion stage starts from a LiDAR-only (TransFusion-L) checkpoint: it may lack every tensor outside
        the LiDAR backbone and LiDAR detector (those keep their initialisation), never one inside
        (:func:`~perception3d.engine.checkpoint.check_state_dict_keys`). A model without cameras is strict."""
        if not self.head.use_camera:
            return False
        lidar = [n for n, m in self.named_children() if m is not None and any(m is x for x in self._lidar_modules())]
        lidar_head = [f"head.lidar.{n}" for n, m in self.head.lidar.named_children()
                      if any(m is x for x in self._lidar_modules())]
        return not key.startswith(tuple(f"{n}." for n in lidar + lidar_head))

    def _lidar_modules(self) -> List[nn.Module]:
        mods = [self.voxel_encoder, self.backbone_3d, self.map_to_bev, self.backbone_2d]
        lid = self.head.lidar
        mods += [lid.shared_conv, lid.heatmap_head, lid.class_encoding, lid.decoder, lid.heads]
        return [m for m in mods if m is not None]

    def train(self, mode: bool = True) -> "SparseFusion":
        super().train(mode)
        for m in self._lidar_modules() if self.freeze_lidar else ():
            m.eval()
        return self

    def extract_bev(self, points: Sequence[torch.Tensor]) -> tuple[torch.Tensor, BEVGrid]:
        """Per-frame points → (BEV map [B, C, H, W], its metric grid read off the sparse tensor, as CenterPoint)."""
        x = self.voxel_encoder(points)
        if self.backbone_3d is not None:
            x = self.backbone_3d(x)
        grid = BEVGrid.from_sparse(x)
        x = self.map_to_bev(x)
        if x.shape[0] != len(points):
            x = torch.cat([x, x.new_zeros((len(points) - x.shape[0],) + tuple(x.shape[1:]))])
        x = self.backbone_2d(x) if self.backbone_2d is not None else x
        return x, grid.resampled(x.shape[-2:])

    def extract_img(self, imgs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Per-sample [V, 3, H, W] in [0, 1] → FPN levels [B·V, C, h, w]."""
        x = torch.stack(list(imgs)).float()
        b, v = x.shape[:2]
        x = (x.reshape(b * v, *x.shape[2:]) - self.img_mean) / self.img_std
        feats = self.img_backbone(x)
        return self.img_neck(feats) if self.img_neck is not None else feats

    def _calib(self, samples: Sequence[Any], imgs: Sequence[torch.Tensor], dev) -> Dict[str, Any]:
        def stack(key):
            vals = [_get(s, key) for s in samples]
            if any(v is None for v in vals):
                return None
            return torch.stack([torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v)
                                for v in vals]).float().to(dev)
        cam2img, lidar2cam = stack("cam2img"), stack("lidar2cam")
        if cam2img is None or lidar2cam is None:
            raise ValueError("SparseFusion: every data sample needs 'cam2img' [V, 3, 3] and 'lidar2cam' [V, 4, 4] "
                             "when images are given")
        if cam2img.shape[1] != imgs[0].shape[0]:
            raise ValueError(f"SparseFusion: {imgs[0].shape[0]} images but {cam2img.shape[1]} calibrations")
        k4 = torch.zeros_like(lidar2cam)
        k4[..., :3, :3] = cam2img
        k4[..., 3, 3] = 1
        h, w = imgs[0].shape[2:4]
        depth = stack("sparse_depth")
        return dict(cam2img=cam2img, lidar2cam=lidar2cam, lidar2img=k4 @ lidar2cam, img_size=(int(h), int(w)),
                    sparse_depth=None if depth is None else depth.reshape(-1, *depth.shape[2:]))

    def forward(self, inputs: Union[dict, Sequence[torch.Tensor]], data_samples: Optional[list] = None,
                mode: str = "tensor"):
        points = inputs["points"] if isinstance(inputs, dict) else inputs
        imgs = inputs.get("imgs") if isinstance(inputs, dict) else None
        if imgs is None and data_samples:                                # packed by Pack3DDetInputs(keys=[images])
            have = [_get(s, "images") is not None and len(_get(s, "images")) > 0 for s in data_samples]
            if all(have):
                imgs = [torch.as_tensor(np.stack(_get(s, "images"))) if not isinstance(_get(s, "images"),
                                                                                        torch.Tensor)
                        else _get(s, "images") for s in data_samples]
            elif any(have):
                self.num_lidar_only_batches += 1
                warnings.warn(f"SparseFusion: {have.count(False)} of {len(have)} samples have no camera images "
                              f"(skip_missing_cameras); this batch runs LiDAR-only "
                              f"({self.num_lidar_only_batches} so far)")
        camera_only = getattr(self.head, "camera_only", False)
        if camera_only and imgs is None:
            raise ValueError("SparseFusion: the camera pre-training stage (head camera_only=True) needs images in "
                             "every sample")
        # the camera pre-training stage runs no LiDAR network (the points only fill the sparse depth maps)
        bev, grid = (None, None) if camera_only else self.extract_bev(points)
        dev = points[0].device if camera_only else bev.device
        calib, img_feats = None, None
        if imgs is not None and self.head.use_camera:
            imgs = [_chw(im).to(dev) for im in imgs]
            calib = self._calib(data_samples or [{}] * len(points), imgs, dev)
            img_feats = self.extract_img(imgs)
        out = self.head(bev, img_feats, calib, grid)
        if mode == "tensor":
            return out
        if mode == "loss":
            if data_samples is None:
                raise ValueError("SparseFusion.forward(mode='loss') needs data_samples with gt_bboxes_3d/gt_labels_3d")
            full = [_boxes9(_get(s, "gt_bboxes_3d")).to(dev) for s in data_samples]
            labels = [torch.as_tensor(np.asarray(_get(s, "gt_labels_3d"))).long().reshape(-1).to(dev)
                      for s in data_samples]
            return self.head.loss(out, full, labels, calib)
        if mode == "predict":
            results = self.head.predict(out)
            data_samples = data_samples if data_samples is not None else [dict() for _ in results]
            for s, r in zip(data_samples, results):
                if isinstance(s, dict):
                    s["pred_instances_3d"] = r
                else:
                    s.pred_instances_3d = BaseDataElement(**r)
            return data_samples
        raise ValueError(f"SparseFusion.forward: mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

