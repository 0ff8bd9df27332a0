"""DTU / SpaRe scenes: per-view 3 × 4 projection matrices ``pos_XXX.txt`` decomposed into K, R, t."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from perception3d.structures.cameras import Cameras, decompose_projection
from .base import PathLike, Scene, _image_size, _target_size

__all__ = ["read_dtu", "read_projection_matrix", "DTU_IMAGE", "SPARE_IMAGE"]


def read_projection_matrix(path: PathLike) -> np.ndarray:
    """A 3 × 4 projection matrix from a text file of 12 numbers (3 rows × 4; DTU's ``pos_XXX.txt``).
    A 4th row ``0 0 0 1`` is tolerated."""
    path = Path(path)
    try:
        vals = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read a projection matrix ({e})") from e
    if vals.size == 16:
        vals = vals[:12]
    if vals.size != 12:
        raise ValueError(f"{path}: expected 12 numbers (3 x 4 projection matrix), found {vals.size}")
    return vals.reshape(3, 4)


DTU_IMAGE = "rect_{:03d}_{}_r5000.png"
SPARE_IMAGE = "cam_{:03d}_{}_0000.png"


def _dtu_calib_file(root: Path, scene_dir: Path, idx: int, calib_dir: Optional[PathLike]) -> Optional[Path]:
    name = f"pos_{idx + 1:03d}.txt"
    cands = [Path(calib_dir) / name] if calib_dir is not None else [
        scene_dir / name, scene_dir / "cams" / name, scene_dir / "Calibration" / name,
        scene_dir / "Calibration" / "cal18" / name, root / "Calibration" / "cal18" / name,
        root / "Calibration" / name, root / "Cameras" / name, root / "cams" / name,
    ]
    return next((c for c in cands if c.is_file()), None)


def read_dtu(scene_dir: PathLike, view_ids: Optional[Sequence[int]] = None,
             train_ids: Optional[Sequence[int]] = None, test_ids: Optional[Sequence[int]] = None,
             dataset: str = "DTU", lighting: int = 3, calib_dir: Optional[PathLike] = None,
             mask_dir: Optional[PathLike] = None, downscale: Optional[float] = None,
             size: Optional[tuple[int, int]] = None, image_size: Optional[tuple[int, int]] = None,
             require_images: bool = True, normalize: bool = False) -> Scene:
    """Read a DTU / SpaRe scene folder with per-view 3 × 4 projection matrices.

    Layout (SpaRe's, which follows DTU / RegNeRF): view index ``i`` ↔ file number ``i + 1``;
    images ``scene_dir/rect_{i+1:03d}_{lighting}_r5000.png`` (DTU) or ``cam_{i+1:03d}_{lighting}_0000.png``
    (SpaRe synthetic, ``dataset`` not containing "dtu"); projection ``pos_{i+1:03d}.txt`` found in
    ``calib_dir`` or, in that order, ``scene_dir/``, ``scene_dir/cams/``, ``scene_dir/Calibration[/cal18]/``,
    ``root/Calibration/cal18/``, ``root/Calibration/``, ``root/Cameras/``, ``root/cams/`` with ``root`` the
    parent of ``scene_dir``. Each ``P = K [R | t]`` is decomposed (:func:`decompose_projection`).

    The IDR / NeuS / pixelNeRF DTU layout is read too: ``scene_dir/cameras.npz`` (or ``cameras_sphere.npz``)
    with ``world_mat_{i}`` (P in its top 3 rows) and ``scale_mat_{i}``, images ``scene_dir/image/{i:06d}.png``
    and masks ``scene_dir/mask/{i:03d}.png``; with ``normalize`` the cameras use ``P · scale_mat`` (the
    object's bounding sphere becomes the unit sphere, as IDR / NeuS train).

    DTU's calibration does not state its pixel-centre convention; ``cx, cy`` are used as they are (as RegNeRF,
    pixelNeRF and the SpaRe baselines do; :func:`~perception3d.structures.cameras.shift_principal_point` moves
    them by half a pixel if needed).

    Args:
        view_ids: views to read (default: all ``pos_XXX.txt`` found next to the images, or train ∪ test).
        train_ids / test_ids: view indices of the split (SpaRe's ``input_views`` / ``test_views``).
        mask_dir: optional folder of object masks named like the images or ``{i:03d}.png`` (IDR style).
        image_size: (W, H) the projection matrices refer to, when images are absent (default 1600 × 1200).
        require_images: raise if the image of a view that is not a test view is missing (test views may lack
            images: SpaRe gives only the input views); False: allow any view without an image.
    """
    import re

    scene_dir = Path(scene_dir)
    root = scene_dir.parent
    is_dtu = "dtu" in dataset.lower()
    pattern = DTU_IMAGE if is_dtu else SPARE_IMAGE
    npz_path = next((p for p in (scene_dir / "cameras.npz", scene_dir / "cameras_sphere.npz") if p.is_file()), None)
    npz = dict(np.load(npz_path)) if npz_path is not None else {}
    if mask_dir is None and (scene_dir / "mask").is_dir():
        mask_dir = scene_dir / "mask"
    if view_ids is None:
        if train_ids is not None or test_ids is not None:
            view_ids = sorted(set(train_ids or []) | set(test_ids or []))
        else:
            found = {int(m.group(1)) for k in npz if (m := re.fullmatch(r"world_mat_(\d+)", k))}
            for d in [scene_dir, scene_dir / "cams"] + ([Path(calib_dir)] if calib_dir else []):
                if d.is_dir():
                    found |= {int(m.group(1)) - 1 for f in d.iterdir()
                              if (m := re.fullmatch(r"pos_(\d+)\.txt", f.name))}
            for f in scene_dir.iterdir() if scene_dir.is_dir() else []:
                m = re.fullmatch(r"(?:rect|cam)_(\d+)_(\d)_(?:r5000|0000)\.png", f.name)
                if m and int(m.group(2)) == lighting:
                    found.add(int(m.group(1)) - 1)
            view_ids = sorted(found)
    if not view_ids:
        raise FileNotFoundError(f"{scene_dir}: no views found (no pos_XXX.txt / {pattern.format(1, lighting)} files)")
    viewmats, Ks, paths, names, mpaths = [], [], [], [], []
    wh = None
    for i in view_ids:
        cf = _dtu_calib_file(root, scene_dir, i, calib_dir)
        if cf is not None:
            P = read_projection_matrix(cf)
        elif f"world_mat_{i}" in npz:
            P = np.asarray(npz[f"world_mat_{i}"], dtype=np.float64)
            if normalize:
                if f"scale_mat_{i}" not in npz:
                    raise ValueError(f"{npz_path}: normalize=True but no scale_mat_{i}")
                P = P @ np.asarray(npz[f"scale_mat_{i}"], dtype=np.float64)
            P = P[:3, :4]
        else:
            raise FileNotFoundError(f"{scene_dir}: no projection matrix pos_{i + 1:03d}.txt "
                                    f"(nor world_mat_{i} in a cameras.npz) for view {i}")
        K, R, t = decompose_projection(P)
        p = scene_dir / pattern.format(i + 1, lighting)
        if not p.is_file() and (scene_dir / "image" / f"{i:06d}.png").is_file():
            p = scene_dir / "image" / f"{i:06d}.png"
        if not p.is_file():
            if require_images and not (test_ids is not None and i in set(test_ids)):
                raise FileNotFoundError(f"{scene_dir}: image for view {i} not found: {p}")
            p = None
        elif wh is None:
            wh = _image_size(p)
        vm = torch.eye(4)
        vm[:3, :3], vm[:3, 3] = R, t
        viewmats.append(vm)
        Ks.append(K)
        paths.append(p)
        names.append(p.stem if p is not None and p.parent.name == "image" else pattern.format(i + 1, lighting)[:-4])
        if mask_dir is not None:
            cands = [Path(mask_dir) / pattern.format(i + 1, lighting), Path(mask_dir) / f"{i:03d}.png"]
            mpaths.append(next((c for c in cands if c.is_file()), None))
    if wh is None:
        wh = tuple(image_size) if image_size is not None else (1600, 1200)
    cams = Cameras(torch.stack(viewmats), torch.stack(Ks), wh[0], wh[1], names)
    tw, th = _target_size(wh[0], wh[1], downscale, size)
    if (tw, th) != wh:
        cams = cams.resize(tw, th)
    pos = {v: k for k, v in enumerate(view_ids)}
    tr = [pos[i] for i in train_ids] if train_ids is not None else list(range(len(view_ids)))
    te = [pos[i] for i in test_ids] if test_ids is not None else []
    if train_ids is None and test_ids is not None:
        tr = [k for k in range(len(view_ids)) if k not in set(te)]
    return Scene(cams, paths, names, tr, te, background=None, mask_paths=mpaths if mask_dir is not None else None,
                 extras={"view_ids": list(view_ids), "dataset": dataset})
