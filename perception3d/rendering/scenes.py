"""Multi-view scenes on disk → one :class:`Scene` (images + OpenCV :class:`Cameras` + splits).

Readers (each converts its format's camera convention at the reader, DESIGN.md §4):

* :func:`read_blender` — NeRF-synthetic / Blender ``transforms_{split}.json`` (OpenGL c2w → OpenCV).
* :func:`read_colmap` — COLMAP sparse model, text or binary (``cameras``, ``images``, ``points3D``).
* :func:`read_dtu` — DTU / SpaRe: per-view 3 × 4 projection matrices (``pos_XXX.txt``, or IDR's
  ``cameras.npz``) decomposed into K, R, t.
* :func:`read_lmgaussian` — LM-Gaussian's ``cams/<name>_cam.txt`` ("extrinsic" is camera → world,
  "intrinsic" at 512 × 288, rescaled to the real image size).
* :func:`read_nerfstudio` — nerfstudio / instant-ngp ``transforms.json`` (real captures: ``fl_x, cx, k1 …``,
  OpenGL c2w → OpenCV, images undistorted to a pinhole camera).
* :func:`read_scene` — picks one of the above from what is in the folder.

Images are loaded lazily (``scene.image(i)``) and cached; ``scene.images`` loads all of them. Typical use::

    scene = read_blender("data/nerf_synthetic/lego", downscale=2)
    cams = scene.train_cameras                      # viewmats [N, 4, 4] w2c OpenCV, Ks [N, 3, 3], as gsplat
    gt = scene.stack_images(scene.train_ids)        # [N, H, W, 3] float32 in [0, 1]
    masks = [scene.mask(i) for i in scene.train_ids]  # alpha > 0.5 (RGBA) or mask files, else None
"""


from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .readers.base import IMAGE_EXTS, PathLike, Scene, camera_radius, load_image
from .readers.blender import read_blender
from .readers.colmap import COLMAP_CAMERA_MODELS, colmap_K, read_colmap, read_colmap_model, write_colmap_model
from .readers.dtu import DTU_IMAGE, SPARE_IMAGE, read_dtu, read_projection_matrix
from .readers.lmgaussian import decode_jet_depth, read_cam_txt, read_lmgaussian, read_lmgaussian_depth
from .readers.nerfstudio import read_nerfstudio, read_points_ply

__all__ = [
    "Scene", "load_image", "camera_radius", "IMAGE_EXTS", "read_blender", "read_colmap", "read_colmap_model",
    "write_colmap_model", "colmap_K", "COLMAP_CAMERA_MODELS", "read_projection_matrix", "read_dtu", "DTU_IMAGE",
    "SPARE_IMAGE", "read_cam_txt", "read_lmgaussian", "decode_jet_depth", "read_lmgaussian_depth", "read_scene",
    "read_nerfstudio", "read_points_ply", "scene_format", "READERS", "select_views", "focus_point", "depth_range",
    "frustum_points", "find_points_file",
]


def scene_format(root: PathLike) -> str:
    """The format of a scene folder, from its contents: ``transforms_*.json`` → "blender", ``transforms.json`` →
    "nerfstudio", ``sparse/`` or ``cameras.{bin,txt}`` → "colmap", ``cams/`` + ``images/`` → "lmgaussian",
    ``pos_XXX.txt`` / ``rect_*`` / ``cam_*`` / ``cameras.npz`` → "dtu"."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"scene folder not found: {root}")
    if any(root.glob("transforms_*.json")):
        return "blender"
    if (root / "transforms.json").is_file():
        return "nerfstudio"
    if (root / "sparse").is_dir() or (root / "cameras.bin").is_file() or (root / "cameras.txt").is_file():
        return "colmap"
    if (root / "cams").is_dir() and (root / "images").is_dir():
        return "lmgaussian"
    if any(root.glob("pos_*.txt")) or any(root.glob("rect_*_r5000.png")) or any(root.glob("cam_*_0000.png")) \
            or (root / "cameras.npz").is_file() or (root / "cameras_sphere.npz").is_file():
        return "dtu"
    raise ValueError(f"{root}: cannot tell the scene format (no transforms*.json, sparse/, cams/ or pos_*.txt)")


def read_scene(root: PathLike, **kwargs) -> Scene:
    """Read a scene folder with the reader :func:`scene_format` picks; ``kwargs`` go to that reader."""
    kind = scene_format(root)
    if kind == "dtu" and "dataset" not in kwargs and any(Path(root).glob("cam_*_0000.png")):
        kwargs["dataset"] = "Synthetic"
    return READERS[kind](root, **kwargs)


READERS = {"blender": read_blender, "nerfstudio": read_nerfstudio, "instant-ngp": read_nerfstudio,
           "colmap": read_colmap, "lmgaussian": read_lmgaussian, "dtu": read_dtu, "spare": read_dtu,
           "auto": read_scene}
"""``data.type`` of a config → reader (``build_scene`` in :mod:`.trainer` adds ``"default"``)."""


# ----------------------------------------------------------------------------------------------------------
# Train / test split of a capture
# ----------------------------------------------------------------------------------------------------------
def select_views(scene: Scene, train_views=None, n_train_views: Optional[int] = None, test_views=None,
                 holdout_every: Optional[int] = None, min_train: int = 2) -> tuple[list[int], list[int]]:
    """Training and test view indices of ``scene`` from one split rule (the others None):

    * ``train_views``: view indices (int) or names (str); ``test_views`` default to every other view;
    * ``n_train_views = k``: k views evenly spaced over the views in reading order
      (``round(linspace(0, N − 1, k))``, as the sparse-view papers pick them), the rest test;
    * ``holdout_every = k``: every k-th view (0, k, 2k, …) is a test view, the rest train (3DGS's llffhold);
    * none: the reader's own split.

    Raises ValueError for unknown names, out-of-range or repeated ids, a view in both sets, or fewer than
    ``min_train`` training views (a Gaussian scene cannot be fitted from zero or one view).
    """
    n = len(scene)
    rules = [r for r, v in (("train_views", train_views), ("n_train_views", n_train_views),
                            ("holdout_every", holdout_every)) if v is not None]
    if len(rules) > 1:
        raise ValueError(f"data: give one of train_views / n_train_views / holdout_every, got {rules}")

    def ids_of(views, key):
        out = []
        for v in views:
            if isinstance(v, str):
                if v not in scene.names:
                    raise ValueError(f"data.{key}: no view named {v!r} (views: {scene.names[:5]}…)")
                out.append(scene.names.index(v))
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                if not 0 <= int(v) < n:
                    raise ValueError(f"data.{key}: view index {v} out of range (the scene has {n} views)")
                out.append(int(v))
            else:
                raise ValueError(f"data.{key}: entries must be view indices or names, got {v!r}")
        if len(set(out)) != len(out):
            raise ValueError(f"data.{key}: repeated views {views}")
        return out

    if train_views is not None:
        train = ids_of(list(train_views), "train_views")
    elif n_train_views is not None:
        k = int(n_train_views)
        if not 1 <= k <= n:
            raise ValueError(f"data.n_train_views must be in 1..{n} for a scene of {n} views, got {k}")
        train = sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})
    elif holdout_every is not None:
        k = int(holdout_every)
        if k < 2:
            raise ValueError(f"data.holdout_every must be >= 2, got {k}")
        train = [i for i in range(n) if i % k != 0]
        if test_views is None:
            test_views = [i for i in range(n) if i % k == 0]
    else:
        train = list(scene.train_ids)
        if test_views is None:
            test_views = list(scene.test_ids)
    if test_views is None:
        test = [i for i in range(n) if i not in set(train)]
    else:
        test = ids_of(list(test_views), "test_views")
    both = sorted(set(train) & set(test))
    if both:
        raise ValueError(f"data: views {both} are both training and test views")
    if len(train) < min_train:
        raise ValueError(f"data: {len(train)} training view(s) {train}; at least {min_train} are needed "
                         f"(the scene has {n} views)")
    missing = [scene.names[i] for i in train if scene.image_paths[i] is None]
    if missing:
        raise ValueError(f"data: training views without an image file: {missing}")
    return train, test


# ----------------------------------------------------------------------------------------------------------
# Scene extent and initial points from the cameras
# ----------------------------------------------------------------------------------------------------------
def focus_point(cams) -> Optional[torch.Tensor]:
    """The point closest (least squares) to all optical axes of ``cams`` — what the cameras look at — or None
    when the axes are near-parallel (forward-facing captures) or the point is behind a camera. → [3]."""
    c2w = cams.camtoworlds.double()
    c, d = c2w[:, :3, 3], c2w[:, :3, 2]
    P = torch.eye(3, dtype=torch.float64) - d[:, :, None] * d[:, None, :]  # projector orthogonal to each axis
    A, b = P.sum(0), (P @ c[:, :, None]).sum(0)[:, 0]
    if float(torch.linalg.eigvalsh(A)[0]) < 0.02 * len(cams):  # axes within ~8° of each other
        return None
    x = torch.linalg.solve(A, b)
    if ((x - c) * d).sum(-1).min() <= 0:
        return None
    return x.float()


def depth_range(scene: Scene, ids: Sequence[int]) -> tuple[float, float]:
    """(near, far) camera-z range of the content seen by views ``ids``: the format's bounds; else the 2–98 %
    depths of its points; else 0.2–5 × the distance to the cameras' focus point (:func:`focus_point`). A
    forward-facing rig with none of these raises ValueError (set ``init_depth_range`` in the config)."""
    if scene.bounds is not None:
        return float(scene.bounds[0]), float(scene.bounds[1])
    cams = scene.cameras[list(ids)]
    if scene.points3d is not None and len(scene.points3d):
        _, z = cams.project(scene.points3d)
        z = z[z > 0]
        if len(z) > 10:
            lo, hi = torch.quantile(z, 0.02), torch.quantile(z, 0.98)
            return float(lo) * 0.8, float(hi) * 1.25
    f = focus_point(scene.cameras if len(ids) < 3 else cams)
    if f is not None:
        dist = float(((f - cams.centers) * cams.camtoworlds[:, :3, 2]).sum(-1).median())
        return 0.2 * dist, 5.0 * dist
    raise ValueError("cannot tell the scene's depth range: no bounds, no 3D points and the cameras' axes are "
                     "near-parallel; set model.init_depth_range = (near, far) or use init='points'/'depth_prior'")


@torch.no_grad()
def frustum_points(scene: Scene, ids: Sequence[int], n: int, near: float, far: float,
                   generator: Optional[torch.Generator] = None,
                   min_views: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random points inside the overlap of the training views' frusta, coloured by the pixel they came from.

    Each candidate is a random pixel of a random view in ``ids`` pushed to a depth drawn uniformly in
    *disparity* between ``near`` and ``far`` (dense near the cameras, sparse far away — unbounded scenes), kept
    when at least ``min(min_views, len(ids))`` of the views see it (inside the image, depth in [near, far]).
    Returns (points [n', 3], rgb [n', 3]) with n' = n unless the overlap is nearly empty.
    """
    ids = list(ids)
    if not 0 < near < far:
        raise ValueError(f"frustum_points: need 0 < near < far, got ({near}, {far})")
    cams = scene.cameras[ids]
    W, H = cams.width, cams.height
    need = min(min_views, len(ids))
    pts, cols, got = [], [], 0
    for _ in range(50):
        m = max(2 * (n - got), 1024)
        v = torch.randint(len(ids), (m,), generator=generator)
        uv = torch.rand(m, 2, generator=generator) * torch.tensor([W, H], dtype=torch.float32)
        disp = 1 / far + torch.rand(m, generator=generator) * (1 / near - 1 / far)
        world = torch.cat([cams[int(k)].unproject(uv[v == k], 1 / disp[v == k])[0] for k in range(len(ids))])
        src = torch.cat([torch.stack([v[v == k] * 0 + k, uv[v == k, 0].long(), uv[v == k, 1].long()], 1)
                         for k in range(len(ids))])
        puv, z = cams.project(world)
        inside = (z >= near) & (z <= far) & (puv[..., 0] >= 0) & (puv[..., 0] < W) & (puv[..., 1] >= 0) \
            & (puv[..., 1] < H)
        keep = inside.sum(0) >= need
        world, src = world[keep], src[keep]
        rgb = torch.empty(len(world), 3)
        for k in range(len(ids)):
            sel = src[:, 0] == k
            if sel.any():
                rgb[sel] = scene.image(ids[k])[src[sel, 2], src[sel, 1]]
        pts.append(world)
        cols.append(rgb)
        got += len(world)
        if got >= n:
            break
    if got == 0:
        raise ValueError(f"frustum_points: the training views {ids} share no visible volume in depth "
                         f"[{near:.4g}, {far:.4g}]")
    return torch.cat(pts)[:n], torch.cat(cols)[:n]


def find_points_file(root: PathLike) -> Optional[Path]:
    """An initial point cloud shipped with a scene folder: LM-Gaussian's ``points3d.ply`` (DUSt3R points) or a
    ``points3D.ply`` / ``sparse/0/points3D.ply`` beside it, else None."""
    root = Path(root)
    for c in ("points3d.ply", "points3D.ply", "sparse/0/points3D.ply", "sparse/0/points3d.ply"):
        if (root / c).is_file():
            return root / c
    return None
