"""MetaCap's canonical-space radiance field (NeuS-style SDF + colour) on sparse voxel grids of our
:class:`~perception3d.sparse.SparseTensor`.

The authors encode canonical points with a multi-resolution hash grid (tiny-cuda-nn, 12 levels × 2 features) in
front of two small MLPs (instant-nsr-pl's ``volume-sdf`` and ``volume-radiance``). Here the encoding is a stack
of **sparse voxel grids**: each level is a SparseTensor whose active lattice points lie within the sampling shell
around the canonical body (points farther than the body-model threshold are never sampled, so a dense or hashed
grid would spend its memory on empty space); a canonical point reads each level by trilinear interpolation of the
features at the 8 lattice points around it (lattice points found through the coordinate set's sorted keys).

    geometry   [x̂, enc(x_c)] → MLP (64, 1 hidden, ReLU) → (s, h)      s: signed distance, h: 13 features
               geometric ("sphere") initialisation: s ≈ |x̂| − r at the start (SAL / NeuS / instant-nsr-pl)
    texture    [h, n_c, d_c] → MLP (64, 2 hidden, ReLU) → sigmoid → rgb    n_c, d_c: canonical normal, view dir
    variance   inv_s = exp(10 · v), v learnable, v₀ = 0.3   (NeuS eq. 13's sharpness s of Φ_s = sigmoid(s·x))

``x̂ = (x_c − centre) / scale`` maps the canonical box into about [−1, 1]³; the SDF is returned in metres
(multiplied by ``scale``) so the eikonal term holds in world units.

The initial sphere must not enclose the sampled shell. Samples are only drawn within a few centimetres of the
body, and a sample deep inside the SDF's negative region (s · f ≪ −1) has NeuS opacity α ≈ 1 − exp(−s |c| δ),
which does not depend on f: the SDF gets almost no gradient from the images, only s and the normals do. A
body inside the sphere (instant-nsr-pl's r = 0.5 around the box centre encloses the torso) therefore stays in
a stable "fog": the SDF stays negative all over the shell while the mask loss lowers s. Outside the sphere,
α ≈ s |c| δ · exp(−s f) keeps a live log-gradient, so the surface is carved in from outside, as NeuS does
for a camera outside its unit sphere. MetaCap's trainer therefore starts at r = 0 (the SDF is the distance to
the box centre, positive over the whole shell).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ....sparse import SparseTensor
from ....sparse.tensor import linearize

__all__ = ["SparseVoxelEncoding", "CanonicalField", "active_lattice"]

_CORNERS = torch.tensor([[dz, dy, dx] for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)])


def active_lattice(points: np.ndarray, origin: np.ndarray, voxel_sizes: Sequence[float], shape_at: list,
                   radius: float) -> list[np.ndarray]:
    """Integer lattice coordinates (z, y, x) [N_l, 3] of every level whose lattice points lie within
    ``radius + √3 · voxel`` of ``points`` [P, 3] (x, y, z). Coarse to fine: a level's candidates are the children
    of the previous level's active points, so no dense grid of the finest level is ever built."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    out = []
    cand = None
    for lv, vs in enumerate(voxel_sizes):
        shp = np.array(shape_at[lv])                                   # lattice points per axis (z, y, x)
        if cand is None:
            axes = [np.arange(n) for n in shp]
            cand = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        xyz = origin + cand[:, ::-1] * vs
        d, _ = tree.query(xyz, k=1, distance_upper_bound=radius + math.sqrt(3) * vs + 1e-9)
        act = cand[np.isfinite(d)]
        out.append(act.astype(np.int64))
        if lv + 1 < len(voxel_sizes):
            # an active finer point lies within half a coarse cell (per axis) of an active coarse point
            ratio = vs / voxel_sizes[lv + 1]
            r = int(math.ceil(ratio / 2))
            off = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
            child = np.round(act * ratio).astype(np.int64)[:, None, :] + off[None]
            child = child.reshape(-1, 3)
            nxt = np.array(shape_at[lv + 1])
            child = child[np.all((child >= 0) & (child < nxt), 1)]
            key = np.unique((child[:, 0] * nxt[1] + child[:, 1]) * nxt[2] + child[:, 2])
            cand = np.stack([key // (nxt[1] * nxt[2]), (key // nxt[2]) % nxt[1], key % nxt[2]], 1)
    return out


class SparseVoxelEncoding(nn.Module):
    """Multi-level sparse voxel feature grids over a canonical box.

    Args:
        lo, hi: canonical box corners (x, y, z), metres.
        active_points: [P, 3] canonical points (body vertices) around which lattice points are active.
        voxel_sizes: lattice spacing per level, coarse to fine (metres).
        features: channels per level.
        radius: lattice points within ``radius`` (+ one cell diagonal) of ``active_points`` are active.
    The levels are kept as SparseTensors (``self.level(l)``) whose feats are the learnable ``self.feats[l]``.
    """

    def __init__(self, lo: Sequence[float], hi: Sequence[float], active_points: torch.Tensor,
                 voxel_sizes: Sequence[float], features: int = 2, radius: float = 0.05) -> None:
        super().__init__()
        lo_np, hi_np = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        self.voxel_sizes = [float(v) for v in voxel_sizes]
        shapes = [tuple(int(math.ceil((hi_np[2 - a] - lo_np[2 - a]) / v)) + 1 for a in range(3))
                  for v in self.voxel_sizes]                              # (z, y, x) lattice points
        coords = active_lattice(active_points.detach().double().cpu().numpy(), lo_np, self.voxel_sizes, shapes,
                                radius)
        self.shapes = shapes
        self.register_buffer("origin", torch.tensor(lo_np, dtype=torch.float32))
        self.feats = nn.ParameterList()
        for lv, c in enumerate(coords):
            c4 = torch.cat([torch.zeros(len(c), 1, dtype=torch.int64), torch.from_numpy(c)], 1).int()
            self.register_buffer(f"coords{lv}", c4)
            keys, perm = torch.sort(linearize(c4, shapes[lv]))
            self.register_buffer(f"keys{lv}", keys)
            self.register_buffer(f"perm{lv}", perm)
            # tiny-cuda-nn initialises hash-grid features uniformly in ±1e-4
            self.feats.append(nn.Parameter(torch.empty(len(c), features).uniform_(-1e-4, 1e-4)))
        self.out_dim = features * len(coords)

    def level(self, lv: int) -> SparseTensor:
        """Level ``lv`` as a SparseTensor (coords (0, z, y, x), the learnable features, voxel size and origin)."""
        vs = self.voxel_sizes[lv]
        o = self.origin.tolist()
        return SparseTensor(self.feats[lv], getattr(self, f"coords{lv}"), self.shapes[lv], 1, 1, (vs,) * 3,
                            (o[2], o[1], o[0]), check=False)

    def num_active(self) -> list[int]:
        return [len(f) for f in self.feats]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Canonical points [N, 3] (x, y, z) → features [N, L · C] (trilinear; absent lattice points read 0)."""
        outs = []
        for lv, vs in enumerate(self.voxel_sizes):
            g = ((x - self.origin) / vs).flip(-1)                             # continuous (z, y, x) lattice coords
            shp = torch.tensor(self.shapes[lv], device=x.device)
            g = torch.minimum(g.clamp_min(0), (shp - 1 - 1e-4).to(g.dtype))
            base = g.detach().floor().long()
            frac = g - base                                                   # differentiable in x
            corner = base[:, None, :] + _CORNERS.to(x.device)[None]          # [N, 8, 3]
            corner = torch.minimum(corner, shp - 1)
            c4 = torch.cat([torch.zeros_like(corner[..., :1]), corner], -1).reshape(-1, 4)
            keys = linearize(c4, self.shapes[lv])
            skeys = getattr(self, f"keys{lv}")
            pos = torch.searchsorted(skeys, keys).clamp_max(len(skeys) - 1)
            found = skeys[pos] == keys
            rows = getattr(self, f"perm{lv}")[pos]
            f = self.feats[lv][rows] * found[:, None].to(x.dtype)
            f = f.reshape(len(x), 8, -1)
            w = torch.where(_CORNERS.to(x.device)[None].bool(), frac[:, None, :], 1 - frac[:, None, :]).prod(-1)
            outs.append((w[..., None] * f).sum(1))
        return torch.cat(outs, -1)


def _mlp(dims: Sequence[int]) -> nn.Sequential:
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class CanonicalField(nn.Module):
    """The canonical SDF + colour field of one subject (MetaCap's NeuS model without the sampler).

    Args:
        lo, hi: canonical box (x, y, z) corners, metres; active_points: [P, 3] canonical body vertices.
        voxel_sizes, features, radius: the sparse voxel encoding (:class:`SparseVoxelEncoding`).
        hidden: MLP width (64); geo_layers: hidden layers of the geometry MLP (1); tex_layers: of the texture MLP (2).
        feature_dim: geometry features passed to the texture MLP (13).
        sphere_radius: geometric initialisation radius in normalised units (0.5, instant-nsr-pl's; see the module
            docstring for why MetaCap's trainer uses 0); variance_init: v₀ (0.3).
    """

    def __init__(self, lo: Sequence[float], hi: Sequence[float], active_points: torch.Tensor,
                 voxel_sizes: Sequence[float] = (0.08, 0.04, 0.02), features: int = 2, radius: float = 0.05,
                 hidden: int = 64, geo_layers: int = 1, tex_layers: int = 2, feature_dim: int = 13,
                 sphere_radius: float = 0.5, variance_init: float = 0.3) -> None:
        super().__init__()
        lo_t, hi_t = torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32)
        self.register_buffer("centre", (lo_t + hi_t) / 2)
        self.scale = float((hi_t - lo_t).max() / 2)
        self.encoding = SparseVoxelEncoding(lo, hi, active_points, voxel_sizes, features, radius)
        self.feature_dim = feature_dim
        self.geometry = _mlp([3 + self.encoding.out_dim] + [hidden] * geo_layers + [1 + feature_dim])
        self.texture = _mlp([feature_dim + 6] + [hidden] * tex_layers + [3])
        self.variance = nn.Parameter(torch.tensor(float(variance_init)))
        self._sphere_init(sphere_radius)

    @torch.no_grad()
    def _sphere_init(self, r: float) -> None:
        """Geometric initialisation (Atzmon & Lipman, SAL; as instant-nsr-pl's ``sphere_init``): the geometry MLP
        starts as the signed distance to a sphere of radius ``r`` around the box centre; feature inputs start at 0."""
        lins = [m for m in self.geometry if isinstance(m, nn.Linear)]
        for i, lin in enumerate(lins):
            out_dim, in_dim = lin.weight.shape
            if i == len(lins) - 1:
                nn.init.normal_(lin.weight, mean=math.sqrt(math.pi) / math.sqrt(in_dim), std=1e-4)
                nn.init.constant_(lin.bias, -r)
            else:
                nn.init.constant_(lin.bias, 0.0)
                nn.init.normal_(lin.weight, 0.0, math.sqrt(2) / math.sqrt(out_dim))
                if i == 0:
                    lin.weight[:, 3:] = 0.0

    @property
    def inv_s(self) -> torch.Tensor:
        """NeuS's sharpness s = exp(10 v) (clipped to [1e-6, 1e6] as the authors)."""
        return torch.exp(self.variance * 10.0).clamp(1e-6, 1e6)

    def sdf(self, xc: torch.Tensor, with_feature: bool = True):
        """Canonical points [N, 3] → signed distance [N] in metres (and features [N, feature_dim])."""
        xn = (xc - self.centre) / self.scale
        out = self.geometry(torch.cat([xn, self.encoding(xc)], -1))
        s = out[:, 0] * self.scale
        return (s, out[:, 1:]) if with_feature else s

    def sdf_and_grad(self, xc: torch.Tensor, create_graph: bool = True):
        """(sdf [N], ∇_{x_c} sdf [N, 3], features [N, F]) with the analytic gradient (autograd, differentiable
        again when ``create_graph`` so the eikonal term trains the field)."""
        with torch.enable_grad():
            if not xc.requires_grad:
                xc = xc.detach().requires_grad_(True)
            s, h = self.sdf(xc)
            g, = torch.autograd.grad(s.sum(), xc, create_graph=create_graph)
        return s, g, h

    def color(self, h: torch.Tensor, normal_c: torch.Tensor, dir_c: torch.Tensor) -> torch.Tensor:
        """Texture MLP: features [N, F], canonical unit normal [N, 3] and view direction [N, 3] → rgb [N, 3]."""
        return torch.sigmoid(self.texture(torch.cat([h, normal_c, dir_c], -1)))


def normalize(v: torch.Tensor) -> torch.Tensor:
    return F.normalize(v, dim=-1)
