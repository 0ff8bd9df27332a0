"""Multi-view scenes on disk → one :class:`Scene` (images + OpenCV :class:`Cameras` + splits).

Readers (each converts its format's camera convention at the reader, DESIGN.md §4):

* :func:`read_blender` — NeRF-synthetic / Blender ``transforms_{split}.json`` (OpenGL c2w → OpenCV).
* :func:`read_colmap` — COLMAP sparse model, text or binary (``cameras``, ``images``, ``points3D``).
* :func:`read_dtu` — DTU / SpaRe: per-view 3 × 4 projection matrices (``pos_XXX.txt``, or IDR's
  ``cameras.npz``) decomposed into K, R, t.
* :func:`read_lmgaussian` — LM-Gaussian's ``cams/<name>_cam.txt`` ("extrinsic" is camera → world,
  "intrinsic" at 512 × 288, rescaled to the real image size).
* :func:`read_scene` — picks one of the above from what is in the folder.

Images are loaded lazily (``scene.image(i)``) and cached; ``scene.images`` loads all of them. Typical use::

    scene = read_blender("data/nerf_synthetic/lego", downscale=2)
    cams = scene.train_cameras                      # viewmats [N, 4, 4] w2c OpenCV, Ks [N, 3, 3], as gsplat
    gt = scene.stack_images(scene.train_ids)        # [N, H, W, 3] float32 in [0, 1]
    masks = [scene.mask(i) for i in scene.train_ids]  # alpha > 0.5 (RGBA) or mask files, else None
"""


from __future__ import annotations

from pathlib import Path

from .readers.base import IMAGE_EXTS, PathLike, Scene, camera_radius, load_image
from .readers.blender import read_blender
from .readers.colmap import COLMAP_CAMERA_MODELS, colmap_K, read_colmap, read_colmap_model, write_colmap_model
from .readers.colmap import _rotmat_to_qvec  # noqa: F401  (tests write COLMAP models with it)
from .readers.dtu import DTU_IMAGE, SPARE_IMAGE, read_dtu, read_projection_matrix
from .readers.lmgaussian import decode_jet_depth, read_cam_txt, read_lmgaussian, read_lmgaussian_depth

__all__ = [
    "Scene", "load_image", "camera_radius", "IMAGE_EXTS", "read_blender", "read_colmap", "read_colmap_model",
    "write_colmap_model", "colmap_K", "COLMAP_CAMERA_MODELS", "read_projection_matrix", "read_dtu", "DTU_IMAGE",
    "SPARE_IMAGE", "read_cam_txt", "read_lmgaussian", "decode_jet_depth", "read_lmgaussian_depth", "read_scene",
]


def read_scene(root: PathLike, **kwargs) -> Scene:
    """Read a scene folder, picking the reader from its contents: ``transforms_*.json`` → Blender,
    ``sparse/`` or ``cameras.{bin,txt}`` → COLMAP, ``cams/*_cam.txt`` + ``images/`` → LM-Gaussian,
    ``pos_XXX.txt`` / ``rect_*`` / ``cam_*`` → DTU / SpaRe. ``kwargs`` go to the chosen reader."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"scene folder not found: {root}")
    if any(root.glob("transforms_*.json")):
        return read_blender(root, **kwargs)
    if (root / "sparse").is_dir() or (root / "cameras.bin").is_file() or (root / "cameras.txt").is_file():
        return read_colmap(root, **kwargs)
    if (root / "cams").is_dir() and (root / "images").is_dir():
        return read_lmgaussian(root, **kwargs)
    if any(root.glob("pos_*.txt")) or any(root.glob("rect_*_r5000.png")) or any(root.glob("cam_*_0000.png")) \
            or (root / "cameras.npz").is_file() or (root / "cameras_sphere.npz").is_file():
        if "dataset" not in kwargs and any(root.glob("cam_*_0000.png")):
            kwargs["dataset"] = "Synthetic"
        return read_dtu(root, **kwargs)
    raise ValueError(f"{root}: cannot tell the scene format (no transforms_*.json, sparse/, cams/ or pos_*.txt)")
