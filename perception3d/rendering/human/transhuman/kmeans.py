"""Body-part tokens: a fixed k-means clustering of the canonical body vertices (TransHuman Sec. 3.2, "canonical
body grouping"; the authors ship it as ``kmeans_dict/kmeans_dict_300.npy`` for SMPL — here it is computed from the
body model's T-pose vertices, deterministically, so the procedural template and SMPL are both served)."""
from __future__ import annotations

import torch

__all__ = ["kmeans_labels", "pool_by_label"]


def kmeans_labels(points: torch.Tensor, k: int, iters: int = 50, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding. points [V, 3] → labels int64 [V] in 0..k−1, every cluster
    non-empty (an emptied cluster is re-seeded at the point farthest from its centre). Raises ValueError when
    there are fewer points than clusters."""
    pts = points.detach().to(torch.float64).cpu()
    V = pts.shape[0]
    if V < k:
        raise ValueError(f"k-means: {V} body vertices cannot form {k} tokens (use num_tokens <= {V})")
    g = torch.Generator().manual_seed(seed)
    centres = [pts[torch.randint(V, (1,), generator=g)].squeeze(0)]
    d2 = ((pts - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        i = torch.multinomial(d2 / d2.sum(), 1, generator=g) if d2.sum() > 0 else torch.randint(V, (1,), generator=g)
        centres.append(pts[i].squeeze(0))
        d2 = torch.minimum(d2, ((pts - centres[-1]) ** 2).sum(1))
    c = torch.stack(centres)
    labels = torch.cdist(pts, c).argmin(1)
    for _ in range(iters):
        counts = torch.bincount(labels, minlength=k)
        for j in torch.nonzero(counts == 0).flatten().tolist():   # re-seed empty clusters
            far = ((pts - c[labels]) ** 2).sum(1).argmax()
            labels[far] = j
        counts = torch.bincount(labels, minlength=k).clamp_min(1)
        c = torch.zeros(k, 3, dtype=pts.dtype).index_add_(0, labels, pts) / counts[:, None]
        new = torch.cdist(pts, c).argmin(1)
        if torch.equal(new, labels) and bool((torch.bincount(new, minlength=k) > 0).all()):
            break
        labels = new
    for j in torch.nonzero(torch.bincount(labels, minlength=k) == 0).flatten().tolist():
        labels[((pts - c[labels]) ** 2).sum(1).argmax()] = j
    return labels


def pool_by_label(x: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of x [..., V, C] over the vertices of each label → [..., k, C] (the authors' ``voxelization``)."""
    counts = torch.bincount(labels, minlength=k).clamp_min(1).to(x.dtype)
    out = x.new_zeros(*x.shape[:-2], k, x.shape[-1]).index_add_(-2, labels, x)
    return out / counts[:, None]
