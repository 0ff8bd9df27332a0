"""NeRF-synthetic / Blender ``transforms_{split}.json`` scenes (OpenGL camera → world poses)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from perception3d.fileio import read_json
from perception3d.structures.cameras import Cameras, focal_from_fov, opengl_to_opencv
from .base import IMAGE_EXTS, PathLike, Scene, _image_size, _target_size

__all__ = ["read_blender"]


def read_blender(root: PathLike, splits: Sequence[str] = ("train", "test"),
                 train_splits: Sequence[str] = ("train",), test_splits: Sequence[str] = ("test",), background: Optional[Sequence[float]] = (1.0, 1.0, 1.0),
                 downscale: Optional[float] = None, size: Optional[tuple[int, int]] = None,
                 only_existing: bool = False) -> Scene:
    """Read a NeRF-synthetic / Blender scene: ``root/transforms_{split}.json``.

    Each JSON has ``camera_angle_x`` (horizontal FoV, radians; focal ``f = 0.5 W / tan(0.5 camera_angle_x)``,
    square pixels, principal point at the image centre) or instant-ngp keys ``fl_x, fl_y, cx, cy, w, h``, and
    ``frames[*]`` with ``file_path`` (extension optional, ``.png`` added) and ``transform_matrix`` — a
    camera → world pose with OpenGL camera axes, converted to OpenCV here.

    Args:
        splits: splits to read; those without a JSON are skipped (at least one must exist). Add "val" to
            read ``transforms_val.json`` too.
        train_splits / test_splits: which splits form ``train_ids`` / ``test_ids`` (NeRF / 3DGS protocol: train
            on "train", test on "test"; a split in neither, like "val", is in ``extras["split_ids"]`` only).
        background: RGB colour RGBA images are composited on (white by default, as in NeRF); None = raw RGB.
        downscale / size: deliver images (and K) shrunk by this factor / at this (width, height).
        only_existing: drop frames whose image file is missing instead of raising ``FileNotFoundError``.
    """
    root = Path(root)
    c2ws, Ks, paths, names, split_of = [], [], [], [], []
    wh: Optional[tuple[int, int]] = None
    found = False
    for split in splits:
        jpath = root / f"transforms_{split}.json"
        if not jpath.is_file():
            continue
        found = True
        meta = read_json(jpath)
        if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
            raise ValueError(f"{jpath}: no 'frames' list")
        for k, fr in enumerate(meta["frames"]):
            if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
                raise ValueError(f"{jpath}: frames[{k}] needs 'file_path' and 'transform_matrix'")
            p = root / fr["file_path"]
            if p.suffix.lower() not in IMAGE_EXTS:
                p = p.with_name(p.name + ".png")
            if not p.is_file():
                if only_existing:
                    continue
                raise FileNotFoundError(
                    f"{jpath}: frames[{k}] image file not found: {p} (pass only_existing=True to skip such frames)")
            try:
                if wh is None:
                    wh = (int(meta["w"]), int(meta["h"])) if "w" in meta and "h" in meta else _image_size(p)
                W, H = wh
                if "fl_x" in meta:
                    fx = float(meta["fl_x"])
                    fy = float(meta.get("fl_y", fx))
                    cx, cy = float(meta.get("cx", W / 2)), float(meta.get("cy", H / 2))
                elif "camera_angle_x" in meta:
                    fx = fy = focal_from_fov(float(meta["camera_angle_x"]), W)
                    cx, cy = W / 2, H / 2
                else:
                    raise ValueError("needs 'camera_angle_x' or 'fl_x' for the focal length")
            except (TypeError, ValueError) as e:      # a word or a list where a number belongs
                raise ValueError(f"{jpath}: camera intrinsics (w, h, fl_x, fl_y, cx, cy, camera_angle_x): {e}") from e
            Ks.append([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
            try:
                m = np.asarray(fr["transform_matrix"], dtype=np.float64)
            except (TypeError, ValueError) as e:      # ragged rows, words: not a matrix of numbers
                raise ValueError(f"{jpath}: frames[{k}] transform_matrix is not a matrix of numbers ({e})") from e
            if m.shape != (4, 4) or not np.isfinite(m).all():
                raise ValueError(f"{jpath}: frames[{k}] transform_matrix must be a finite 4 x 4 matrix, "
                                 f"got shape {m.shape}")
            c2ws.append(m)
            paths.append(p)
            names.append(Path(fr["file_path"]).with_suffix("").as_posix().lstrip("./") if p.suffix else p.stem)
            split_of.append(split)
    if not found:
        raise FileNotFoundError(f"{root}: no transforms_{{{','.join(splits)}}}.json found")
    if not paths:
        raise ValueError(f"{root}: no frame with an existing image file")
    c2w = opengl_to_opencv(torch.from_numpy(np.stack(c2ws)))
    cams = Cameras.from_camtoworlds(c2w, torch.tensor(Ks, dtype=torch.float32), wh[0], wh[1], names)
    tw, th = _target_size(wh[0], wh[1], downscale, size)
    if (tw, th) != wh:
        cams = cams.resize(tw, th)
    test_ids = [i for i, s in enumerate(split_of) if s in test_splits]
    train_ids = [i for i, s in enumerate(split_of) if s in train_splits]
    split_ids = {s: [i for i, t in enumerate(split_of) if t == s] for s in dict.fromkeys(split_of)}
    return Scene(cams, paths, names, train_ids, test_ids,
                 background=tuple(background) if background is not None else None,
                 extras={"splits": split_of, "split_ids": split_ids})
