"""A built-in procedural shape dataset, written in the ModelNet40 resampled layout (see ``modelnet40.py``).

12 classes of closed (or thick) surfaces sampled uniformly by area, with outward normals:
sphere, cube, cylinder, cone, torus, pyramid, capsule, ellipsoid, prism, ring (flat annulus / washer),
l_shape, dome (hemisphere with its base disk). Each shape gets a random pose (uniform SO(3)), a random
scale with ±10 % per-axis anisotropy, ±15 % shape-parameter jitter, a shift, Gaussian position noise and
perturbed normals. Everything is a function of ``(seed, class, index)``, so the files are identical on
every machine. :func:`generate_shapes` writes the whole tree into a temporary sibling folder and renames it
into place (atomic: a reader never sees a half-written dataset; a concurrent writer loses the race cleanly).

:class:`SyntheticShapesDataset` is :class:`ModelNet40Dataset` plus generation when the folder is missing.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from perception3d.registry import DATASETS

from .modelnet40 import ModelNet40Dataset, random_rotation

__all__ = ["SHAPE_CLASSES", "sample_shape", "generate_shapes", "SyntheticShapesDataset"]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _sphere_dirs(rng, n):
    return _unit(rng.normal(size=(n, 3)))


def _mesh(rng, n, verts, faces):
    """Area-weighted samples on a convex triangle mesh; normals point away from the centroid."""
    v = np.asarray(verts, float)
    f = np.asarray(faces)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cr = np.cross(b - a, c - a)
    area = 0.5 * np.linalg.norm(cr, axis=1)
    nrm = _unit(cr)
    flip = ((a + b + c) / 3 - v.mean(0)) @ np.eye(3)
    nrm = np.where(((nrm * flip).sum(1) < 0)[:, None], -nrm, nrm)
    idx = rng.choice(len(f), size=n, p=area / area.sum())
    u, w = rng.random(n), rng.random(n)
    s = np.sqrt(u)
    p = (1 - s)[:, None] * a[idx] + (s * (1 - w))[:, None] * b[idx] + (s * w)[:, None] * c[idx]
    return p, nrm[idx]


def _box_faces(rng, n, lo, hi):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    ext = hi - lo
    areas = np.array([ext[1] * ext[2], ext[1] * ext[2], ext[0] * ext[2], ext[0] * ext[2],
                      ext[0] * ext[1], ext[0] * ext[1]])
    face = rng.choice(6, size=n, p=areas / areas.sum())
    p = lo + rng.random((n, 3)) * ext
    nrm = np.zeros((n, 3))
    axis, side = face // 2, face % 2
    p[np.arange(n), axis] = np.where(side == 1, hi[axis], lo[axis])
    nrm[np.arange(n), axis] = np.where(side == 1, 1.0, -1.0)
    return p, nrm


def _mix(rng, n, parts):
    """parts: list of (area, sampler(m) -> (p, nrm)); draw counts by area."""
    areas = np.array([a for a, _ in parts], float)
    counts = rng.multinomial(n, areas / areas.sum())
    ps, ns = zip(*[fn(m) for (_, fn), m in zip(parts, counts)])
    return np.concatenate(ps), np.concatenate(ns)


def _disk(rng, m, r_in, r_out, z, up):
    r = np.sqrt(rng.uniform(r_in ** 2, r_out ** 2, m))
    t = rng.uniform(0, 2 * np.pi, m)
    p = np.stack([r * np.cos(t), r * np.sin(t), np.full(m, z)], 1)
    return p, np.tile([0.0, 0.0, 1.0 if up else -1.0], (m, 1))


def _tube(rng, m, r, z0, z1, outward=True):
    t = rng.uniform(0, 2 * np.pi, m)
    d = np.stack([np.cos(t), np.sin(t), np.zeros(m)], 1)
    p = d * r + np.stack([np.zeros(m), np.zeros(m), rng.uniform(z0, z1, m)], 1)
    return p, d if outward else -d


def _sphere(rng, n, j):
    d = _sphere_dirs(rng, n)
    return d * 0.8, d


def _cube(rng, n, j):
    return _box_faces(rng, n, [-0.6] * 3, [0.6] * 3)


def _cylinder(rng, n, j):
    r, h = 0.45 * j(), 0.8 * j()
    return _mix(rng, n, [(2 * np.pi * r * 2 * h, lambda m: _tube(rng, m, r, -h, h)),
                         (np.pi * r * r, lambda m: _disk(rng, m, 0, r, h, True)),
                         (np.pi * r * r, lambda m: _disk(rng, m, 0, r, -h, False))])


def _cone(rng, n, j):
    r, h = 0.65 * j(), 1.4 * j()

    def lateral(m):
        t = np.sqrt(rng.random(m))        # distance fraction from the apex, uniform in area
        a = rng.uniform(0, 2 * np.pi, m)
        p = np.stack([t * r * np.cos(a), t * r * np.sin(a), h / 2 - t * h], 1)
        nrm = _unit(np.stack([h * np.cos(a), h * np.sin(a), np.full(m, r)], 1))
        return p, nrm
    return _mix(rng, n, [(np.pi * r * np.hypot(r, h), lateral),
                         (np.pi * r * r, lambda m: _disk(rng, m, 0, r, -h / 2, False))])


def _torus(rng, n, j):
    R, r = 0.65 * j(), 0.22 * j()
    th, ph = [], []
    while sum(len(x) for x in th) < n:   # rejection sampling: density ∝ (R + r cos φ)
        t, p = rng.uniform(0, 2 * np.pi, 2 * n), rng.uniform(0, 2 * np.pi, 2 * n)
        keep = rng.random(2 * n) < (R + r * np.cos(p)) / (R + r)
        th.append(t[keep]), ph.append(p[keep])
    t, p = np.concatenate(th)[:n], np.concatenate(ph)[:n]
    nrm = np.stack([np.cos(p) * np.cos(t), np.cos(p) * np.sin(t), np.sin(p)], 1)
    pts = np.stack([(R + r * np.cos(p)) * np.cos(t), (R + r * np.cos(p)) * np.sin(t), r * np.sin(p)], 1)
    return pts, nrm


def _pyramid(rng, n, j):
    s, h = 0.7 * j(), 1.3 * j()
    v = [[-s, -s, -h / 3], [s, -s, -h / 3], [s, s, -h / 3], [-s, s, -h / 3], [0, 0, 2 * h / 3]]
    f = [[0, 1, 2], [0, 2, 3], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]]
    return _mesh(rng, n, v, f)


def _capsule(rng, n, j):
    r, L = 0.35 * j(), 0.55 * j()

    def cap(m, sgn):
        d = _sphere_dirs(rng, m)
        d[:, 2] = sgn * np.abs(d[:, 2])
        return d * r + [0, 0, sgn * L], d
    return _mix(rng, n, [(2 * np.pi * r * 2 * L, lambda m: _tube(rng, m, r, -L, L)),
                         (2 * np.pi * r * r, lambda m: cap(m, 1.0)), (2 * np.pi * r * r, lambda m: cap(m, -1.0))])


def _ellipsoid(rng, n, j):
    ax = np.array([0.9, 0.55, 0.3]) * np.array([j(), j(), j()])
    d = _sphere_dirs(rng, n)
    return d * ax, _unit(d / ax)


def _prism(rng, n, j):
    s, L = 0.75 * j(), 0.8 * j()
    tri = [[s, 0], [-s / 2, s * np.sqrt(3) / 2], [-s / 2, -s * np.sqrt(3) / 2]]
    v = [[x, y, -L] for x, y in tri] + [[x, y, L] for x, y in tri]
    f = [[0, 1, 2], [3, 4, 5], [0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [2, 0, 3], [2, 3, 5]]
    return _mesh(rng, n, v, f)


def _ring(rng, n, j):
    R, r, t = 0.8 * j(), 0.45 * j(), 0.08 * j()
    return _mix(rng, n, [(np.pi * (R * R - r * r), lambda m: _disk(rng, m, r, R, t, True)),
                         (np.pi * (R * R - r * r), lambda m: _disk(rng, m, r, R, -t, False)),
                         (2 * np.pi * R * 2 * t, lambda m: _tube(rng, m, R, -t, t)),
                         (2 * np.pi * r * 2 * t, lambda m: _tube(rng, m, r, -t, t, outward=False))])


def _l_shape(rng, n, j):
    w, t = 0.8 * j(), 0.25 * j()
    A = ([-w, -t, -w], [w, t, -w + 2 * t])          # horizontal bar
    B = ([-w, -t, -w], [-w + 2 * t, t, w])          # vertical bar

    def part(m, box, other):
        ps, ns, have = [], [], 0
        while have < m:
            p, q = _box_faces(rng, 2 * m + 8, *box)
            lo, hi = np.asarray(other[0]), np.asarray(other[1])
            inside = ((p > lo + 1e-9) & (p < hi - 1e-9)).all(1) | (
                ((p >= lo - 1e-9) & (p <= hi + 1e-9)).all(1) & ((q * ((lo + hi) / 2 - p)).sum(1) > 0))
            ps.append(p[~inside]), ns.append(q[~inside])
            have += int((~inside).sum())
        return np.concatenate(ps)[:m], np.concatenate(ns)[:m]
    area = lambda b: 2 * sum(e1 * e2 for e1, e2 in [(b[1][0] - b[0][0], b[1][1] - b[0][1]),
                                                     (b[1][0] - b[0][0], b[1][2] - b[0][2]),
                                                     (b[1][1] - b[0][1], b[1][2] - b[0][2])])
    return _mix(rng, n, [(area(A), lambda m: part(m, A, B)), (area(B), lambda m: part(m, B, A))])


def _dome(rng, n, j):
    r = 0.8 * j()

    def shell(m):
        d = _sphere_dirs(rng, m)
        d[:, 2] = np.abs(d[:, 2])
        return d * r - [0, 0, r / 3], d
    return _mix(rng, n, [(2 * np.pi * r * r, shell), (np.pi * r * r, lambda m: _disk(rng, m, 0, r, -r / 3, False))])


_SAMPLERS: Dict[str, Callable] = dict(sphere=_sphere, cube=_cube, cylinder=_cylinder, cone=_cone, torus=_torus,
                                      pyramid=_pyramid, capsule=_capsule, ellipsoid=_ellipsoid, prism=_prism,
                                      ring=_ring, l_shape=_l_shape, dome=_dome)
SHAPE_CLASSES: List[str] = list(_SAMPLERS)


def sample_shape(name: str, num_points: int, rng: np.random.Generator, noise: float = 0.01,
                 pose: bool = True) -> np.ndarray:
    """Sample one posed, noisy shape of class ``name`` → float32 ``[num_points, 6]`` (xyz, unit normals)."""
    if name not in _SAMPLERS:
        raise ValueError(f"sample_shape: unknown class {name!r}; known: {SHAPE_CLASSES}")
    jit = lambda: rng.uniform(0.85, 1.15)
    p, nrm = _SAMPLERS[name](rng, num_points, jit)
    if pose:
        A = random_rotation(rng) @ np.diag(rng.uniform(0.9, 1.1, 3)) * rng.uniform(0.6, 1.0)
        p = p @ A.T + rng.uniform(-0.2, 0.2, size=(1, 3))
        nrm = _unit(nrm @ np.linalg.inv(A))       # normals transform with the inverse transpose
    if noise > 0:
        p = p + rng.normal(scale=noise, size=p.shape)
        nrm = _unit(nrm + rng.normal(scale=noise * 5, size=nrm.shape))
    return np.concatenate([p, nrm], 1).astype(np.float32)


def generate_shapes(root: str, num_train: int = 50, num_test: int = 20, num_points: int = 1024, seed: int = 0,
                    classes: Optional[List[str]] = None, noise: float = 0.01) -> Path:
    """Write the dataset into ``root`` (ModelNet40 layout) unless it already exists; returns the path.

    Deterministic in (seed, class, index); written to a temporary sibling and renamed into place.
    """
    root = Path(root)
    if (root / "modelnet40_test.txt").is_file():
        return root
    classes = list(classes or SHAPE_CLASSES)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        splits: Dict[str, List[str]] = {"train": [], "test": []}
        for ci, cls in enumerate(classes):
            (tmp / cls).mkdir()
            for i in range(num_train + num_test):
                name = f"{cls}_{i + 1:04d}"
                rng = np.random.default_rng([seed, ci, i])
                pts = sample_shape(cls, num_points, rng, noise=noise)
                np.savetxt(tmp / cls / f"{name}.txt", pts, fmt="%.6f", delimiter=",")
                splits["train" if i < num_train else "test"].append(name)
        (tmp / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
        for split, names in splits.items():
            (tmp / f"modelnet40_{split}.txt").write_text("\n".join(names) + "\n")
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / "modelnet40_test.txt").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


@DATASETS.register_module()
class SyntheticShapesDataset(ModelNet40Dataset):
    """The procedural shape dataset (generated into ``data_root`` on first use), read as ModelNet40.

    Extra args (used only when generating): ``num_train`` / ``num_test`` shapes per class, ``gen_points``
    points per shape file, ``gen_seed``. Everything else as :class:`ModelNet40Dataset` (``num_points`` keeps
    the first N points of each file: samples are i.i.d., so this is a uniform subsample).
    """

    def __init__(self, data_root: str = "data/synthetic_shapes", split: str = "train", num_train: int = 50,
                 num_test: int = 20, gen_points: int = 1024, gen_seed: int = 0, **kwargs) -> None:
        generate_shapes(data_root, num_train=num_train, num_test=num_test, num_points=gen_points, seed=gen_seed)
        super().__init__(data_root, split=split, **kwargs)
