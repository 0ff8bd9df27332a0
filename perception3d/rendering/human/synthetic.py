"""The built-in multi-view human dataset: procedurally clothed and textured template bodies, animated through a few
motions, rendered from a ring of calibrated cameras and written in exactly the ZJU-MoCap layout
(:mod:`.zju_mocap`), so that the human fields train and test on a fresh machine with no download.

Layout (``root`` holds one ZJU-MoCap sequence per subject)::

    root/synthetic.json                        index: settings, seed, subject folders (written last)
    root/subject0/annots.npy                   cams {K, D, R, T (mm)} and ims [F × {"ims": [C paths]}]
    root/subject0/Camera_B1/000000.jpg ...     C cameras × F frames, black background
    root/subject0/mask/Camera_B1/000000.png    foreground masks (0 / 1, as ZJU's)
    root/subject0/new_vertices/0.npy           [V, 3] posed **body-model** vertices, world, metres
    root/subject0/new_params/0.npy             pickled dict poses [1, 72], Rh [1, 3], Th [1, 3], shapes [1, 10]
    root/subject0/mesh/0.npy                   [V, 3] posed **clothed** vertices (the rendered ground-truth surface)
    root/subject0/faces.npy                    [F, 3] faces of both meshes (the template's)
    root/subject0/synthetic.json               subject: betas, appearance, motion and phase of each frame

Bodies: :func:`~.template.build_template` (the procedural stand-in for SMPL, 24 SMPL joints, 2 shape
coefficients: ``shapes[0, :2]``, the other 8 are 0). A subject is a shape (height, girth), clothing (a layer of
1–2.5 cm over the torso / arms / legs, shoes, hair, with small wrinkles) and a texture (striped shirt, checked
trousers, skin tone, hair colour), all drawn from the seed. The clothed rest surface is skinned with the body's
weights, so the ground-truth mesh moves with the body but differs from it by the clothing. World frame: z up
(ZJU-MoCap's): ``Rh`` turns the template's y-up T-pose upright, ``Th`` stands it on z = 0.

Cameras: ``n_cameras`` (default 24) on two rings (heights 0.5 m and 1.7 m, radius ≈ 3 m, jittered), all looking
at the body, intrinsics in OpenCV's convention in ``annots.npy`` as ZJU's, no distortion.

Rendering: :func:`~.mesh_raster.rasterize_mesh` (z-buffered triangles, exact silhouettes: the masks are the
ground-truth surface's), albedo from the procedural texture evaluated at each pixel's rest-pose surface point,
Lambertian shading under one fixed world light plus ambient.

:func:`ensure_synthetic_humans` generates the dataset on first use (about half a minute on one core at the
default size), under a file lock, into a temporary folder renamed into place when complete: an interrupted run
leaves nothing that looks finished. The same seed and settings give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .body_model import BodyModel, rodrigues
from .mesh_raster import outward_normals, rasterize_mesh
from .template import TEMPLATE_JOINTS, build_template

__all__ = ["ensure_synthetic_humans", "make_synthetic_humans", "synthetic_gt_mesh", "synthetic_settings",
           "MOTIONS", "DEFAULT_ROOT", "VERSION"]

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
DEFAULT_ROOT = "data/zju_synthetic"
VERSION = 1
MOTIONS = ("walk", "wave", "squat_turn", "reach")
SKIN, HAIR, SHIRT, PANTS, SHOES = range(5)
_LIGHT = np.array([0.3, -0.6, 0.75]) / np.linalg.norm([0.3, -0.6, 0.75])


def synthetic_settings(n_subjects: int = 6, motions: Sequence[str] = ("walk", "wave", "squat_turn"),
                       frames_per_motion: int = 4, n_cameras: int = 24, image_size: int = 128,
                       seed: int = 0) -> dict:
    """The settings that define a dataset (validated; stored in ``synthetic.json``)."""
    bad = [m for m in motions if m not in MOTIONS]
    if bad:
        raise ValueError(f"unknown motion(s) {bad}; known: {list(MOTIONS)}")
    for name, v, lo in (("n_subjects", n_subjects, 1), ("frames_per_motion", frames_per_motion, 1),
                        ("n_cameras", n_cameras, 1), ("image_size", image_size, 16)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if image_size > 256:
        raise ValueError(f"image_size must be <= 256 for the built-in dataset, got {image_size}")
    return {"version": VERSION, "n_subjects": n_subjects, "motions": list(motions),
            "frames_per_motion": frames_per_motion, "n_cameras": n_cameras, "image_size": image_size,
            "seed": int(seed)}


# ----------------------------------------------------------------------------------------------------------
# Motions: SMPL-order axis-angle poses [24, 3] of the template (y up, facing +z, left = +x) and a yaw
# ----------------------------------------------------------------------------------------------------------
def _motion_pose(name: str, t: float) -> tuple[np.ndarray, float]:
    """Pose [24, 3] and body yaw (radians about world z) at phase t ∈ [0, 1) of a motion."""
    p = np.zeros((24, 3))
    s = math.sin(2 * math.pi * t)
    # arms relaxed (A-pose): rotating about z lowers the left (+x) arm for negative angles
    p[16, 2], p[17, 2] = -0.9, 0.9
    yaw = 0.0
    if name == "walk":
        p[1, 0], p[2, 0] = -0.45 * s, 0.45 * s              # hips swing (negative = leg forward)
        p[4, 0], p[5, 0] = 0.5 * max(0.0, s) + 0.1, 0.5 * max(0.0, -s) + 0.1   # knees bend backwards
        p[16, 1], p[17, 1] = 0.35 * s, 0.35 * s             # arms swing against the legs
        p[18, 1], p[19, 1] = -0.3, 0.3                      # elbows slightly bent
        yaw = 0.3 * t
    elif name == "wave":
        p[17, 2] = 0.9 - 1.5 * (0.5 + 0.5 * s)              # right arm rises
        p[19, 1] = 0.4 + 0.5 * (0.5 + 0.5 * math.cos(4 * math.pi * t))   # forearm waves (bent forward)
        p[3, 2] = 0.08 * s
        yaw = -0.4 + 0.8 * t
    elif name == "squat_turn":
        d = 0.5 - 0.5 * math.cos(2 * math.pi * t)
        p[1, 0] = p[2, 0] = -0.9 * d                         # thighs forward
        p[4, 0] = p[5, 0] = 1.5 * d                          # knees bend
        p[7, 0] = p[8, 0] = -0.6 * d                         # ankles compensate
        p[3, 0] = 0.3 * d                                    # torso leans forward
        p[16, 1], p[17, 1] = -0.8 * d, 0.8 * d               # arms forward for balance
        yaw = 1.2 * t
    elif name == "reach":
        p[16, 1], p[17, 1] = -1.0 * (0.5 + 0.5 * s), 1.0 * (0.5 + 0.5 * s)
        p[16, 2], p[17, 2] = -0.3, 0.3
        p[6, 1] = 0.3 * s                                    # twist
        yaw = math.pi * t
    else:  # pragma: no cover - validated in synthetic_settings
        raise ValueError(name)
    return p, yaw


def _upright(yaw: float) -> np.ndarray:
    """Rh (axis-angle [3]): template y-up → world z-up (+90° about x), then ``yaw`` about world z."""
    rx = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)
    c, s = math.cos(yaw), math.sin(yaw)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    R = rz @ rx
    angle = math.acos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return axis / (2 * math.sin(angle)) * angle


# ----------------------------------------------------------------------------------------------------------
# Subjects: parts, clothing, texture
# ----------------------------------------------------------------------------------------------------------
def _parts(template, long_sleeves: bool, shorts: bool) -> np.ndarray:
    """Per-vertex part label (SKIN, HAIR, SHIRT, PANTS, SHOES) from each vertex's dominant joint."""
    own = np.argmax(template.weights, axis=1)
    v = template.v_template
    part = np.full(len(own), SKIN)
    part[np.isin(own, [3, 6, 9, 13, 14, 16, 17])] = SHIRT
    if long_sleeves:
        part[np.isin(own, [18, 19])] = SHIRT
    part[np.isin(own, [0, 1, 2] + ([] if shorts else [4, 5]))] = PANTS
    part[np.isin(own, [7, 8, 10, 11])] = SHOES
    head = TEMPLATE_JOINTS[15]
    hair = (own == 15) & ((v[:, 1] > head[1] + 0.10) | ((v[:, 2] < head[2] - 0.01) & (v[:, 1] > head[1] + 0.03)))
    part[hair] = HAIR
    return part


def _neighbour_mean(x: np.ndarray, faces: np.ndarray, n: int) -> np.ndarray:
    """``n`` rounds of averaging a per-vertex field over each vertex and its mesh neighbours."""
    V = len(x)
    src = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    dst = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    deg = np.bincount(dst, minlength=V) + 1.0
    for _ in range(n):
        acc = x.copy()
        np.add.at(acc, dst, x[src])
        x = acc / (deg[:, None] if x.ndim == 2 else deg)
    return x


def _subject(rng: np.random.Generator, index: int) -> dict:
    """Random shape, clothing and colours of one subject (JSON-serialisable)."""
    def col(lo, hi):
        return [round(float(c), 4) for c in rng.uniform(lo, hi, 3)]

    return {
        "name": f"subject{index}",
        "betas": [round(float(rng.uniform(-1.0, 1.0)), 4), round(float(rng.uniform(-0.5, 1.5)), 4)],
        "long_sleeves": bool(rng.random() < 0.5), "shorts": bool(rng.random() < 0.3),
        "shirt_thickness": round(float(rng.uniform(0.01, 0.025)), 4),
        "pants_thickness": round(float(rng.uniform(0.008, 0.015)), 4),
        "skin": [round(float(c), 4) for c in np.array([0.85, 0.65, 0.52]) * rng.uniform(0.55, 1.1)],
        "hair": col(0.05, 0.45),
        "shirt_a": col(0.15, 0.95), "shirt_b": col(0.05, 0.95),
        "stripe_period": round(float(rng.uniform(0.05, 0.12)), 4),
        "pants": col(0.05, 0.6), "check": round(float(rng.uniform(0.03, 0.07)), 4), "shoes": col(0.02, 0.25),
        "offset_xy": [round(float(x), 4) for x in rng.uniform(-0.15, 0.15, 2)],
    }


def _albedo(rest: np.ndarray, part: np.ndarray, subj: dict) -> np.ndarray:
    """Procedural texture at rest-pose (template) points [N, 3] with part labels [N] → RGB [N, 3]."""
    out = np.zeros((len(rest), 3))
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    stripes = 0.5 + 0.5 * np.tanh(6 * np.sin(2 * math.pi * y / subj["stripe_period"]))
    shirt = stripes[:, None] * np.array(subj["shirt_a"]) + (1 - stripes[:, None]) * np.array(subj["shirt_b"])
    c = subj["check"]
    checks = ((np.floor(x / c) + np.floor(y / c) + np.floor(z / c)) % 2)[:, None]
    pants = np.array(subj["pants"]) * (0.75 + 0.35 * checks)
    for k, val in ((SKIN, np.array(subj["skin"])), (HAIR, np.array(subj["hair"])), (SHIRT, shirt),
                   (PANTS, pants), (SHOES, np.array(subj["shoes"]))):
        m = part == k
        out[m] = val[m] if val.ndim == 2 else val
    return np.clip(out, 0, 1)


def _clothed_rest(template, v_shaped: np.ndarray, part: np.ndarray, subj: dict) -> np.ndarray:
    """The subject's clothed rest surface: the shaped body pushed out along its normals by the clothing
    thickness (smoothed across part borders) plus small wrinkles."""
    faces = template.faces
    n = outward_normals(torch.from_numpy(v_shaped).double(), torch.from_numpy(faces)).numpy()
    thick = np.zeros(len(v_shaped))
    thick[part == SHIRT] = subj["shirt_thickness"]
    thick[part == PANTS] = subj["pants_thickness"]
    thick[part == SHOES] = 0.012
    thick[part == HAIR] = 0.015
    thick = _neighbour_mean(thick, faces, 4)
    r = template.v_template
    wrinkles = 0.004 * np.sin(2 * math.pi * r[:, 1] / 0.07 + 3 * r[:, 0]) * np.cos(2 * math.pi * r[:, 0] / 0.09)
    wrinkles *= np.isin(part, [SHIRT, PANTS])
    wrinkles = _neighbour_mean(wrinkles, faces, 1)
    return v_shaped + (thick + wrinkles)[:, None] * n


# ----------------------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------------------
def _cameras(rng: np.random.Generator, n: int, size: int) -> dict:
    """ZJU-style calibration of ``n`` cameras on two rings around the origin, looking at (0, 0, 0.9)."""
    from perception3d.structures.cameras import look_at

    Ks, Rs, Ts = [], [], []
    for c in range(n):
        ring = c % 2
        az = 2 * math.pi * c / n + rng.uniform(-0.05, 0.05)
        radius = 3.0 + rng.uniform(-0.15, 0.15)
        h = (0.5, 1.7)[ring] + rng.uniform(-0.1, 0.1)
        eye = np.array([radius * math.cos(az), radius * math.sin(az), h])
        c2w = look_at(torch.tensor(eye), torch.tensor([0.0, 0.0, 0.9])).double().numpy()
        w2c = np.linalg.inv(c2w)
        f = size * 1.15 * rng.uniform(0.97, 1.03)
        # OpenCV convention (pixel centres at integers), as in ZJU's annots.npy
        Ks.append(np.array([[f, 0, size / 2 - 0.5 + rng.uniform(-1, 1)], [0, f, size / 2 - 0.5 + rng.uniform(-1, 1)],
                            [0, 0, 1.0]]))
        Rs.append(w2c[:3, :3])
        Ts.append(w2c[:3, 3:] * 1000.0)                                    # millimetres
    return {"K": Ks, "D": [np.zeros((5, 1)) for _ in range(n)], "R": Rs, "T": Ts}


# ----------------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------------
def _write_subject(out: Path, subj: dict, settings: dict, cams: dict, body: BodyModel) -> None:
    import imageio.v3 as iio

    template = body.data
    faces = template.faces
    faces_t = torch.from_numpy(faces)
    part = _parts(template, subj["long_sleeves"], subj["shorts"])
    part_onehot = torch.from_numpy(np.eye(5)[part]).float()
    rest_t = torch.from_numpy(template.v_template).float()
    betas = torch.tensor([subj["betas"]], dtype=torch.float32)
    v_shaped = body(betas=betas).v_shaped[0].double().numpy()
    clothed = _clothed_rest(template, v_shaped, part, subj)
    size, C = settings["image_size"], settings["n_cameras"]
    frames = [(m, k / settings["frames_per_motion"]) for m in settings["motions"]
              for k in range(settings["frames_per_motion"])]
    W = torch.as_tensor(template.weights, dtype=torch.float64)
    ims, frame_meta = [], []
    for d in ("new_vertices", "new_params", "mesh"):
        (out / d).mkdir(parents=True)
    for c in range(C):
        (out / f"Camera_B{c + 1}").mkdir()
        (out / "mask" / f"Camera_B{c + 1}").mkdir(parents=True)
    Kh = [torch.tensor(K) + torch.tensor([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]) for K in cams["K"]]  # house
    for fi, (motion, phase) in enumerate(frames):
        pose, yaw = _motion_pose(motion, phase)
        Rh = _upright(yaw)
        o = body(betas=betas, pose=torch.from_numpy(pose).float()[None])
        G = o.transforms[0].double()                                           # [K, 4, 4] rest → posed
        T = torch.einsum("vk,kij->vij", W, G)
        cl = torch.einsum("vij,vj->vi", T[:, :3, :3], torch.from_numpy(clothed)) + T[:, :3, 3]
        R = rodrigues(torch.from_numpy(Rh))
        cl = cl @ R.T
        naked = o.vertices[0].double() @ R.T
        Th = np.array([subj["offset_xy"][0], subj["offset_xy"][1], -float(cl[:, 2].min())])
        cl = cl + torch.from_numpy(Th)
        naked = naked + torch.from_numpy(Th)
        normals = outward_normals(cl, faces_t)
        names = []
        for c in range(C):
            Rc, tc = torch.tensor(cams["R"][c]), torch.tensor(cams["T"][c][:, 0]) / 1000.0
            ras = rasterize_mesh(cl @ Rc.T + tc, faces_t, Kh[c], size, size)
            m = ras.mask
            rgb = np.zeros((size, size, 3))
            if m.any():
                rest_px = ras.interpolate(faces_t, rest_t)[m].numpy()
                part_px = ras.interpolate(faces_t, part_onehot)[m].argmax(-1).numpy()
                n_px = ras.interpolate(faces_t, normals.float())[m].double().numpy()
                n_px /= np.linalg.norm(n_px, axis=1, keepdims=True).clip(1e-9)
                shade = 0.55 + 0.45 * np.clip(n_px @ _LIGHT, 0, None)
                rgb[m.numpy()] = _albedo(rest_px, part_px, subj) * shade[:, None]
            name = f"Camera_B{c + 1}/{fi:06d}.jpg"
            iio.imwrite(out / name, (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), quality=95)
            iio.imwrite(out / "mask" / name.replace(".jpg", ".png"), m.numpy().astype(np.uint8))
            names.append(name)
        ims.append({"ims": names})
        np.save(out / "new_vertices" / f"{fi}.npy", naked.float().numpy())
        np.save(out / "mesh" / f"{fi}.npy", cl.float().numpy())
        shapes = np.zeros((1, 10))
        shapes[0, :2] = subj["betas"]
        np.save(out / "new_params" / f"{fi}.npy",
                {"poses": pose.reshape(1, 72), "Rh": Rh[None], "Th": Th[None], "shapes": shapes})
        frame_meta.append({"frame": fi, "motion": motion, "phase": phase})
    np.save(out / "annots.npy", {"cams": cams, "ims": ims})
    np.save(out / "faces.npy", faces.astype(np.int64))
    (out / "synthetic.json").write_text(json.dumps({**subj, "frames": frame_meta, "body_model": template.source},
                                                   indent=1))


def make_synthetic_humans(out: PathLike, settings: dict) -> Path:
    """Write the dataset of ``settings`` (:func:`synthetic_settings`) into the new folder ``out`` (no atomicity:
    :func:`ensure_synthetic_humans` calls this on a temporary folder)."""
    out = Path(out)
    out.mkdir(parents=True)
    rng = np.random.default_rng(settings["seed"])
    body = BodyModel(build_template())
    cams = _cameras(rng, settings["n_cameras"], settings["image_size"])
    subjects = [_subject(np.random.default_rng([settings["seed"], i]), i) for i in range(settings["n_subjects"])]
    with torch.no_grad():
        for subj in subjects:
            _write_subject(out / subj["name"], subj, settings, cams, body)
    (out / "synthetic.json").write_text(json.dumps({"settings": settings,
                                                    "subjects": [s["name"] for s in subjects]}, indent=1))
    return out


def ensure_synthetic_humans(root: PathLike = DEFAULT_ROOT, **settings) -> Path:
    """The built-in human dataset at ``root``, generated on first use; keyword arguments as
    :func:`synthetic_settings`. A folder made with other settings is an error (delete it or pick another root);
    the generation runs under ``<root>.lock`` into a temporary folder that is renamed into place when complete."""
    from filelock import FileLock

    want = synthetic_settings(**settings)
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        index = root / "synthetic.json"
        if root.exists():
            if not index.is_file():
                raise ValueError(f"{root}: exists but has no synthetic.json (not a finished built-in human dataset); "
                                 "remove it or choose another root")
            have = json.loads(index.read_text()).get("settings")
            if have != want:
                raise ValueError(f"{index}: the dataset there was made with settings {have}, requested {want}; "
                                 "remove the folder or choose another root")
            return root
        for stale in root.parent.glob(f".{root.name}.tmp-*"):   # left by a killed run (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
        try:
            log.info("generating the built-in human dataset in %s (%s)", root, want)
            make_synthetic_humans(tmp, want)
            os.replace(tmp, root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root


def synthetic_gt_mesh(seq_root: PathLike, frame_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rendered (clothed) ground-truth surface of a frame: vertices [V, 3] (world, metres), faces [F, 3]."""
    seq_root = Path(seq_root)
    p = seq_root / "mesh" / f"{int(frame_id)}.npy"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no ground-truth mesh for frame {frame_id} (a built-in dataset folder has "
                                "mesh/<frame>.npy)")
    return (torch.from_numpy(np.load(p, allow_pickle=False)).float(),
            torch.from_numpy(np.load(seq_root / "faces.npy", allow_pickle=False)).long())
