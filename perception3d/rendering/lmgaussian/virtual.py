"""Virtual views for LM-Gaussian's virtual-view regularisation (§IV-C, Eq. 11) and its refinement stage (§IV-D).

The authors interpolate ``num_virtual_poses = 10`` poses between each pair of consecutive training cameras
(rotation by slerp, translation linearly; ``utils/graphics_utils.interpolate_camera_poses``), render the initial
point cloud into them (a PyTorch3D points renderer, ``stage1_forward.py``) and pull the Gaussians' renders there
towards those point renders (L1, weight 0.3). Here the consecutive pair's camera centres are interpolated (the
authors interpolate the world → camera translation; the camera path is the same for a pure translation), the
training poses themselves are left out, and the point cloud is drawn with the package's rasterizer as small
opaque Gaussians (kNN size), so the target also has an alpha: the loss only counts pixels the point cloud
covers (the authors compare whole images against a white background).
"""
from __future__ import annotations

from typing import Sequence

import torch

from perception3d.structures.cameras import Cameras, interpolate_path

__all__ = ["virtual_cameras", "point_render_targets", "distance_weights"]


def virtual_cameras(cams: Cameras, ids: Sequence[int], num_per_pair: int = 10) -> Cameras:
    """``num_per_pair − 1`` interpolated cameras strictly between each consecutive pair of ``ids`` (the pair's
    endpoints are training views), with the first view's intrinsics. → Cameras [(len(ids) − 1)(num − 1)]."""
    ids = list(ids)
    if len(ids) < 2:
        raise ValueError(f"virtual_cameras: need at least 2 training views, got {len(ids)}")
    if num_per_pair < 2:
        raise ValueError(f"virtual_cameras: num_per_pair must be >= 2, got {num_per_pair}")
    path = interpolate_path(cams.camtoworlds[ids], n_per_segment=num_per_pair)  # keyframes at k · num
    keep = [k for k in range(len(path)) if k % num_per_pair != 0]
    c2w = path[keep]
    K = cams.Ks[ids[0]]
    return Cameras(torch.linalg.inv(c2w.double()).float(), K[None].expand(len(c2w), 3, 3).clone(), cams.width,
                   cams.height)


@torch.no_grad()
def point_render_targets(points: torch.Tensor, rgb: torch.Tensor, cams: Cameras, background: torch.Tensor,
                         point_scale: float = 1.0, tile_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Render the point cloud ``points`` [P, 3] with colours ``rgb`` [P, 3] into every camera as opaque
    Gaussians of ``point_scale`` × the kNN distance. → (images [V, H, W, 3] over ``background``, coverage masks
    [V, H, W] bool: alpha > 0.5)."""
    from ..gaussians import GaussianModel

    model = GaussianModel.from_points(points, rgb, sh_degree=0, init_opacity=0.99, init_scale=point_scale)
    imgs, masks = [], []
    for k in range(len(cams)):
        c = cams[k]
        out, alpha, _ = model.render(c.viewmats, c.Ks, c.width, c.height, background=background,
                                     tile_size=tile_size)
        imgs.append(out[0].clamp(0, 1))
        masks.append(alpha[0, ..., 0] > 0.5)
    return torch.stack(imgs), torch.stack(masks)


def distance_weights(virtual: Cameras, train: Cameras, gain: float = 16.0) -> torch.Tensor:
    """The refinement stage's per-view weight (authors' ``stage2_forward.py``): ``min(1, gain · d / d_max)`` with
    d the distance from the virtual camera to the nearest training camera and d_max = 1.2 × the largest
    distance from a training camera to its nearest other training camera: refined images of views close to a
    training view count little (the training view already constrains them). → [V]."""
    tc = train.centers
    dd = torch.cdist(tc, tc) + torch.eye(len(tc)) * 1e12
    d_max = 1.2 * float(dd.min(1).values.max())
    d = torch.cdist(virtual.centers, tc).min(1).values
    return torch.clamp(gain * d / max(d_max, 1e-12), max=1.0)
