"""SpaRe (Sparse Rendering challenge / benchmark) splits, submission zips and evaluation.

Layout, as the benchmark documents it (sparebenchmark.github.io, "Data structure" and "Submitting"):

* A split JSON (e.g. ``Track1_split_test.json``): keys are scene names (= folder names), each value
  ``{"input_views": [...], "test_views": [...], "dataset": "DTU" | "SpaRe"/"Synthetic"}``.
  View index ``i`` corresponds to file number ``i + 1`` (camera ``pos_{i+1:03d}.txt``).
* Images: DTU ``rect_{i+1:03d}_{lighting}_r5000.png``, synthetic ``cam_{i+1:03d}_{lighting}_0000.png``;
  lighting 3 (all lights on) is the one evaluated.
* Submission: a ZIP with one folder per scene **at the archive root** (no enclosing folder), holding the
  PNG renders of every test view, named as above with lighting 3, at 1600 × 1200.
* Metrics: PSNR, PSNR-M (object mask), SSIM, SSIM-M (tight bbox of the mask), LPIPS, LPIPS-M (bbox,
  AlexNet); per image, per scene (mean over its test views) and per dataset (mean over its scenes' images).

Masks for the -M metrics are looked up next to the ground truth (see :func:`find_mask`); without a mask the
-M metrics are ``None`` ("not computed"), and LPIPS is ``None`` unless local weights are given.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from perception3d.fileio import DataFormatError, atomic_path, read_text
from perception3d.rendering.scenes import read_dtu

from perception3d.ops.image_quality import psnr, psnr_masked, ssim, ssim_masked

from .image_metrics import LPIPS, lpips

__all__ = [
    "read_spare_scene", "submission_from_renderer", "SPARE_SIZE", "LIGHTING", "SplitEntry", "load_split", "is_dtu", "view_filename", "write_submission",
    "check_submission", "evaluate_submission", "summarize", "format_table", "find_mask", "read_png",
]

SPARE_SIZE = (1600, 1200)  # (width, height) of every submitted render
LIGHTING = 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PathLike = Union[str, Path]


@dataclass
class SplitEntry:
    """One scene of a split: view indices (0-based; file number = index + 1) and its dataset."""

    input_views: list[int]
    test_views: list[int]
    dataset: str


def is_dtu(dataset: str) -> bool:
    """True for DTU scenes ("DTU", "dtu"); everything else is the synthetic SpaRe part."""
    return "dtu" in str(dataset).lower()


def view_filename(dataset: str, idx: int, lighting: int = LIGHTING) -> str:
    """File name of view ``idx`` (0-based): ``rect_{idx+1:03d}_{l}_r5000.png`` (DTU) or
    ``cam_{idx+1:03d}_{l}_0000.png`` (SpaRe synthetic)."""
    if idx < 0:
        raise ValueError(f"view index must be >= 0, got {idx}")
    return (f"rect_{idx + 1:03d}_{lighting}_r5000.png" if is_dtu(dataset)
            else f"cam_{idx + 1:03d}_{lighting}_0000.png")


def load_split(path: Union[PathLike, Mapping], scene: Optional[str] = None) -> dict[str, SplitEntry]:
    """Read a split: one JSON ``{scene: {input_views, test_views, dataset}}``, a per-scene JSON
    ``{input_views, test_views, dataset[, scene]}`` (scene name from ``scene``, the ``"scene"`` key or the file
    stem), a folder of such JSONs, or an already-parsed dict."""
    if isinstance(path, Mapping):
        data, where = dict(path), "split"
    else:
        path = Path(path)
        if path.is_dir():
            out: dict[str, SplitEntry] = {}
            for f in sorted(path.glob("*.json")):
                out.update(load_split(f))
            if not out:
                raise ValueError(f"{path}: no split JSON files in this folder")
            return out
        try:
            data = json.loads(read_text(path))
        except (OSError, json.JSONDecodeError) as e:
            raise DataFormatError(path, None, f"cannot read split JSON ({e})") from e
        where = str(path)
        if scene is None and isinstance(data, dict) and "test_views" in data:
            scene = data.get("scene", path.stem)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a split must be a JSON object")
    if "test_views" in data:  # a single scene
        data = {scene or data.get("scene", "scene"): data}
    out = {}
    for name, e in data.items():
        if not isinstance(e, dict):
            raise ValueError(f"{where}: entry {name!r} must be an object with input_views/test_views/dataset")
        for key in ("input_views", "test_views", "dataset"):
            if key not in e:
                raise ValueError(f"{where}: scene {name!r} lacks {key!r}")
        try:
            out[str(name)] = SplitEntry([int(v) for v in e["input_views"]], [int(v) for v in e["test_views"]],
                                        str(e["dataset"]))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: scene {name!r}: view indices must be integers ({err})") from err
    return out


def _split(split: Union[PathLike, Mapping]) -> dict[str, SplitEntry]:
    if isinstance(split, Mapping) and split and all(isinstance(v, SplitEntry) for v in split.values()):
        return dict(split)
    return load_split(split)


def read_spare_scene(root: PathLike, scene: str, split: Union[PathLike, Mapping], **kwargs):
    """The :class:`~perception3d.rendering.scenes.Scene` of one split scene: ``root/<scene>`` read with
    :func:`~perception3d.rendering.scenes.read_dtu`, ``train_ids`` = its input views, ``test_ids`` = its test
    views (cameras only when the test images are not there, as in the challenge data). ``kwargs`` go to
    ``read_dtu`` (e.g. ``calib_dir``, ``downscale``)."""
    sp = _split(split)
    if scene not in sp:
        raise KeyError(f"scene {scene!r} is not in the split (scenes: {sorted(sp)})")
    e = sp[scene]
    return read_dtu(Path(root) / scene, train_ids=e.input_views, test_ids=e.test_views, dataset=e.dataset,
                    **kwargs)


# ----------------------------------------------------------------------------------------------------------
# PNG I/O
# ----------------------------------------------------------------------------------------------------------
def _to_uint8(img, where: str) -> np.ndarray:
    """float [H, W, 3] in [0, 1] (numpy / torch) or uint8 [H, W, 3] → uint8 RGB."""
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ValueError(f"{where}: expected an image [H, W, 3], got shape {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    return (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _encode_png(rgb8: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb8[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _decode_raw_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes as stored (uint8 / uint16, 1, 3 or 4 channels, BGR order); ValueError if unreadable."""
    import cv2

    if not bytes(data[:8]) == PNG_SIGNATURE:
        raise ValueError("not a PNG file (bad signature)")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("PNG data cannot be decoded")
    return arr


def read_png(data: Union[bytes, PathLike]) -> np.ndarray:
    """Decode a PNG (bytes or file) → float32 RGB [H, W, 3] in [0, 1]; raises ValueError if unreadable."""
    if not isinstance(data, (bytes, bytearray)):
        data = Path(data).read_bytes()
    arr = _decode_raw_png(data)
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    return (arr[..., ::-1].astype(np.float32) / scale).copy()


# ----------------------------------------------------------------------------------------------------------
# Submission
# ----------------------------------------------------------------------------------------------------------
def write_submission(renders: Mapping[str, Mapping[int, object]], split: Union[PathLike, Mapping],
                     zip_path: PathLike, size: tuple[int, int] = SPARE_SIZE, check: bool = True) -> list[str]:
    """Write the SpaRe submission ZIP for ``renders[scene][view_index] = image``.

    An image is a float [H, W, 3] in [0, 1] (numpy or torch), a uint8 [H, W, 3], a path to a PNG, or a
    callable returning one of those (called lazily, one image in memory at a time). Every test view of every
    scene of ``split`` must be there, nothing else, each ``size`` = (W, H) (1600 × 1200). Entries are
    ``<scene>/<view_filename>`` at the archive root. The ZIP is written to a temporary file and renamed, so
    a failure never leaves a half-written archive; with ``check`` the result is re-validated with
    :func:`check_submission`. Returns the archive's entry names.
    """
    split = _split(split)
    problems = []
    for scene, e in split.items():
        got = renders.get(scene)
        if got is None:
            problems.append(f"scene {scene!r}: no renders")
            continue
        missing = sorted(set(e.test_views) - set(int(k) for k in got))
        extra = sorted(set(int(k) for k in got) - set(e.test_views))
        if missing:
            problems.append(f"scene {scene!r}: missing test views {missing}")
        if extra:
            problems.append(f"scene {scene!r}: views {extra} are not test views of the split")
    for scene in renders:
        if scene not in split:
            problems.append(f"scene {scene!r} is not in the split")
    if problems:
        raise ValueError("cannot write submission:\n  " + "\n  ".join(problems))
    names = []
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for scene, e in split.items():
                for idx in e.test_views:
                    item = renders[scene][idx]
                    where = f"scene {scene!r} view {idx}"
                    if callable(item):
                        item = item()
                    if isinstance(item, (str, Path)):
                        try:
                            item = read_png(item)  # re-encoded below as 8-bit RGB whatever the file was
                        except (OSError, ValueError) as err:
                            raise ValueError(f"{where}: cannot read {item} ({err})") from err
                    rgb8 = _to_uint8(item, where)
                    h, w = rgb8.shape[:2]
                    if (w, h) != tuple(size):
                        raise ValueError(f"{where}: image is {w}x{h}, the benchmark needs {size[0]}x{size[1]}")
                    data = _encode_png(rgb8)
                    name = f"{scene}/{view_filename(e.dataset, idx)}"
                    zf.writestr(name, data)
                    names.append(name)
        if check:
            errs = check_submission(tmp, split, size=size)
            if errs:
                raise ValueError("written submission fails its own check:\n  " + "\n  ".join(errs))
    return names


def submission_from_renderer(root: PathLike, split: Union[PathLike, Mapping], render_fn, zip_path: PathLike,
                             size: tuple[int, int] = SPARE_SIZE, **reader_kwargs) -> list[str]:
    """Render every test view of every split scene and write the submission ZIP.

    ``render_fn(scene_name, scene, view_index, camera)`` gets the scene read by :func:`read_spare_scene`
    (input views with images; test views as cameras) and the test view's :class:`Cameras` (one view, resized to
    ``size``), and returns the image [H, W, 3] in [0, 1]. Views are rendered lazily while the ZIP is written.
    """
    sp = _split(split)
    renders: dict = {}
    for name, e in sp.items():
        scene = read_spare_scene(root, name, sp, **reader_kwargs)
        renders[name] = {}
        for k, idx in zip(scene.test_ids, e.test_views):
            cam = scene.cameras[k].resize(*size)
            renders[name][idx] = (lambda n=name, s=scene, i=idx, c=cam: render_fn(n, s, i, c))
    return write_submission(renders, sp, zip_path, size=size)


def check_submission(zip_path: PathLike, split: Union[PathLike, Mapping],
                     size: tuple[int, int] = SPARE_SIZE) -> list[str]:
    """Validate a submission ZIP against a split. Returns a list of problems (empty = valid), one message each:
    not a zip, enclosing folder, non-PNG file, unexpected file/folder, wrong file name, missing view, extra view,
    unreadable PNG, wrong size, not 8-bit RGB (RGBA, grey or 16-bit)."""
    split = _split(split)
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        return [f"{zip_path}: file not found"]
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        return [f"{zip_path}: not a valid ZIP archive ({e})"]
    problems: list[str] = []
    with zf:
        files = [i for i in zf.infolist() if not i.is_dir()]
        names = [i.filename for i in files]
        tops = {n.split("/")[0] for n in names}
        # An enclosing folder: every file under one top folder that is not a scene, with scenes one level down.
        prefix = ""
        if len(tops) == 1 and next(iter(tops)) not in split and any(n.count("/") >= 2 for n in names):
            top = next(iter(tops))
            problems.append(f"enclosing folder {top + '/'!r}: the scene folders must be at the root of the archive")
            prefix = top + "/"
        expected = {f"{s}/{view_filename(e.dataset, i)}": (s, i) for s, e in split.items() for i in e.test_views}
        seen = set()
        for info in files:
            name = info.filename[len(prefix):] if info.filename.startswith(prefix) else info.filename
            parts = name.split("/")
            if not name.lower().endswith(".png"):
                problems.append(f"{info.filename}: not a PNG file (only .png renders belong in the archive)")
                continue
            if len(parts) != 2:
                problems.append(f"{info.filename}: unexpected location (expected <scene>/<image>.png)")
                continue
            scene, fname = parts
            if scene not in split:
                problems.append(f"{info.filename}: folder {scene!r} is not a scene of the split")
                continue
            if name not in expected:
                e = split[scene]
                want = view_filename(e.dataset, 0)
                m = re.fullmatch(r"(?:rect|cam)_(\d{3})_(\d)_(?:r5000|0000)\.png", fname)
                if m and view_filename(e.dataset, int(m.group(1)) - 1, int(m.group(2))) == fname and \
                        int(m.group(2)) == LIGHTING:
                    problems.append(f"{info.filename}: extra view {int(m.group(1)) - 1} "
                                    f"(not a test view of scene {scene!r})")
                else:
                    problems.append(f"{info.filename}: wrong file name (expected names like {scene}/{want}: "
                                    f"{'rect_XXX_3_r5000.png' if is_dtu(e.dataset) else 'cam_XXX_3_0000.png'}, "
                                    f"XXX = view index + 1)")
                continue
            seen.add(name)
            try:
                data = zf.read(info)
                raw = _decode_raw_png(data)
            except Exception as err:  # noqa: BLE001 - any decoding failure is reported
                problems.append(f"{info.filename}: unreadable PNG ({err})")
                continue
            h, w = raw.shape[:2]
            if (w, h) != tuple(size):
                problems.append(f"{info.filename}: wrong size {w}x{h} (expected {size[0]}x{size[1]})")
            channels = 1 if raw.ndim == 2 else raw.shape[2]
            if raw.dtype != np.uint8 or channels != 3:
                problems.append(f"{info.filename}: {8 * raw.dtype.itemsize}-bit PNG with {channels} channel(s) "
                                f"(expected 8-bit RGB)")
        for name in sorted(set(expected) - seen):
            s, i = expected[name]
            problems.append(f"{name}: missing (test view {i} of scene {s!r})")
    return problems


# ----------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------
def find_mask(gt_root: Path, scene: str, idx: int, dataset: str,
              mask_root: Optional[PathLike] = None) -> Optional[Path]:
    """Object mask of a test view, first found of: ``{mask_root or gt_root}/{scene}/mask/<name>``,
    ``.../{scene}/mask/{idx:03d}.png`` (IDR / RegNeRF DTU masks), ``.../{scene}/masks/<name>``,
    ``{mask_root}/{scene}/<name>``, ``{mask_root}/{scene}/{idx:03d}.png``; ``<name>`` the image file name."""
    fname = view_filename(dataset, idx)
    roots = [Path(mask_root)] if mask_root is not None else []
    roots.append(Path(gt_root))
    cands = []
    for r in roots:
        cands += [r / scene / "mask" / fname, r / scene / "mask" / f"{idx:03d}.png", r / scene / "masks" / fname,
                  r / scene / "masks" / f"{idx:03d}.png"]
    if mask_root is not None:
        cands += [Path(mask_root) / scene / fname, Path(mask_root) / scene / f"{idx:03d}.png"]
    return next((c for c in cands if c.is_file()), None)


class _Source:
    """Read renders from a submission ZIP or a folder in the same layout."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.zf = zipfile.ZipFile(self.path) if self.path.is_file() else None
        if self.zf is None and not self.path.is_dir():
            raise FileNotFoundError(f"renders not found: {self.path}")

    def read(self, rel: str) -> Optional[np.ndarray]:
        if self.zf is not None:
            try:
                return read_png(self.zf.read(rel))
            except KeyError:
                return None
        p = self.path / rel
        return read_png(p) if p.is_file() else None


def evaluate_submission(pred: PathLike, gt_root: PathLike, split: Union[PathLike, Mapping],
                        lpips_net: Optional[LPIPS] = None, mask_root: Optional[PathLike] = None,
                        size: Optional[tuple[int, int]] = None) -> dict:
    """Evaluate renders (ZIP or folder in the submission layout) against ground truth
    ``gt_root/<scene>/<view_filename>``.

    Returns ``{"images": [{scene, dataset, view, file, psnr, psnr_m, ssim, ssim_m, lpips, lpips_m}, ...],
    "scenes": {scene: {...means}}, "datasets": {dataset: {...means}}, "problems": [...]}``. Missing renders
    are reported in ``problems`` and skipped; a metric that cannot be computed (no mask, no LPIPS weights) is
    ``None``. ``size`` (W, H), when given, is enforced on the renders.
    """
    split = _split(split)
    gt_root = Path(gt_root)
    src = _Source(pred)
    rows, problems = [], []
    for scene, e in split.items():
        for idx in e.test_views:
            fname = view_filename(e.dataset, idx)
            gt_path = gt_root / scene / fname
            if not gt_path.is_file():
                raise FileNotFoundError(f"ground truth missing: {gt_path}")
            gt = read_png(gt_path)
            pr = src.read(f"{scene}/{fname}")
            if pr is None:
                problems.append(f"{scene}/{fname}: no render")
                continue
            if pr.shape != gt.shape:
                problems.append(f"{scene}/{fname}: render {pr.shape[1]}x{pr.shape[0]} vs ground truth "
                                f"{gt.shape[1]}x{gt.shape[0]}")
                continue
            if size is not None and (pr.shape[1], pr.shape[0]) != tuple(size):
                problems.append(f"{scene}/{fname}: wrong size {pr.shape[1]}x{pr.shape[0]}")
                continue
            mpath = find_mask(gt_root, scene, idx, e.dataset, mask_root)
            mask = None
            if mpath is not None:
                m = read_png(mpath).mean(-1) > 0.5
                if m.shape != gt.shape[:2]:
                    raise ValueError(f"{mpath}: mask {m.shape[::-1]} does not match the image {gt.shape[1::-1]}")
                mask = m if m.any() else None
            rows.append(dict(
                scene=scene, dataset=e.dataset, view=idx, file=f"{scene}/{fname}",
                psnr=psnr(pr, gt), ssim=ssim(pr, gt),
                psnr_m=psnr_masked(pr, gt, mask) if mask is not None else None,
                ssim_m=ssim_masked(pr, gt, mask) if mask is not None else None,
                lpips=lpips(pr, gt, lpips_net), lpips_m=lpips(pr, gt, lpips_net, mask) if mask is not None else None,
            ))
    return summarize(rows, problems)


METRICS = ("psnr", "psnr_m", "ssim", "ssim_m", "lpips", "lpips_m")


def _mean(rows: Sequence[dict], key: str) -> Optional[float]:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def summarize(rows: list[dict], problems: Optional[list[str]] = None) -> dict:
    """Per-scene means over images and per-dataset means over all of the dataset's images."""
    scenes, datasets = {}, {}
    for s in dict.fromkeys(r["scene"] for r in rows):
        sr = [r for r in rows if r["scene"] == s]
        scenes[s] = {"dataset": sr[0]["dataset"], "n": len(sr), **{k: _mean(sr, k) for k in METRICS}}
    for d in dict.fromkeys(r["dataset"] for r in rows):
        dr = [r for r in rows if r["dataset"] == d]
        datasets[d] = {"n": len(dr), "scenes": len({r["scene"] for r in dr}), **{k: _mean(dr, k) for k in METRICS}}
    return {"images": rows, "scenes": scenes, "datasets": datasets, "problems": list(problems or [])}


def format_table(results: dict, per_image: bool = False) -> str:
    """A plain-text table: one row per scene (and image, if asked), then one per dataset. Metrics that were not
    computed print as ``n/c``."""
    head = ["", "n", "PSNR", "PSNR-M", "SSIM", "SSIM-M", "LPIPS", "LPIPS-M"]

    def fmt(v, k):
        if v is None:
            return "n/c"
        return f"{v:.4f}" if k.startswith(("ssim", "lpips")) else f"{v:.2f}"

    lines = []
    rows = []
    if per_image:
        rows += [[r["file"], "1"] + [fmt(r[k], k) for k in METRICS] for r in results["images"]]
    rows += [[f"{s} ({v['dataset']})", str(v["n"])] + [fmt(v[k], k) for k in METRICS]
             for s, v in results["scenes"].items()]
    rows += [[f"== {d} ==", str(v["n"])] + [fmt(v[k], k) for k in METRICS] for d, v in results["datasets"].items()]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    for r in [head] + rows:
        cells = [str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells))
    if any(r.get("lpips") is None for r in results["images"]):
        lines.append("LPIPS: not computed (pass local AlexNet-LPIPS weights to compute it)")
    if any(r.get("psnr_m") is None for r in results["images"]):
        lines.append("-M metrics: not computed for images without an object mask")
    for p in results.get("problems", []):
        lines.append(f"problem: {p}")
    return "\n".join(lines)
