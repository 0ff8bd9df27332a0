"""Run in a subprocess with OMP_NUM_THREADS=1 (spconv's CPU build is racy with more threads).

Compares our ops with spconv's on the same weights and prints a JSON report on stdout.
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the package, however (or whether) it is installed
import spconv.pytorch as spconv  # noqa: E402

from perception3d.sparse import (SparseConv3d, SparseInverseConv3d, SparseMaxPool3d, SparseTensor, SubMConv3d,  # noqa: E402
                                 use_backend)
from sparse_reference import random_sparse  # noqa: E402


def by_site(t: SparseTensor):
    key = t.coords.long()
    order = torch.argsort(((key[:, 0] * 64 + key[:, 1]) * 64 + key[:, 2]) * 64 + key[:, 3])
    return t.coords[order], t.feats[order]


def compare(ours: SparseTensor, theirs) -> dict:
    oc, of = by_site(ours)
    tc, tf = by_site(SparseTensor.from_spconv(theirs))
    same = oc.shape == tc.shape and bool(torch.equal(oc, tc))
    err = float((of - tf).abs().max()) if same and of.numel() else (0.0 if same else float("inf"))
    return dict(same_sites=same, max_err=err, n=int(oc.shape[0]))


def main() -> None:
    torch.manual_seed(0)
    report = {}
    for shape, batch in (((9, 11, 10), 1), ((7, 13, 12), 3)):
        x = random_sparse(shape, batch, 4, density=0.2, seed=batch)
        xs = x.to_spconv()
        cases = {
            "subm3": (SubMConv3d(4, 8, 3), spconv.SubMConv3d(4, 8, 3)),
            "subm3_dil2": (SubMConv3d(4, 8, 3, dilation=2), spconv.SubMConv3d(4, 8, 3, dilation=2)),
            "conv_k2s2": (SparseConv3d(4, 8, 2, 2), spconv.SparseConv3d(4, 8, 2, 2)),
            "conv_k3s2p1": (SparseConv3d(4, 8, 3, 2, 1), spconv.SparseConv3d(4, 8, 3, 2, 1)),
            "conv_k3s1": (SparseConv3d(4, 8, 3, 1, 0), spconv.SparseConv3d(4, 8, 3, 1, 0)),
        }
        for name, (ours, theirs) in cases.items():
            theirs.load_state_dict(ours.state_dict())
            with torch.no_grad():
                report[f"{name}/{shape}/b{batch}"] = compare(ours(x), theirs(xs))
        pool_o, pool_t = SparseMaxPool3d(2, 2), spconv.SparseMaxPool3d(2, 2)
        with torch.no_grad():
            report[f"maxpool_k2s2/{shape}/b{batch}"] = compare(pool_o(x), pool_t(xs))
        # inverse conv through spconv's indice_key
        down_o, up_o = SparseConv3d(4, 6, 3, 2, 1, indice_key="d"), SparseInverseConv3d(6, 5, 3, indice_key="d")
        down_t, up_t = spconv.SparseConv3d(4, 6, 3, 2, 1, indice_key="d"), spconv.SparseInverseConv3d(6, 5, 3, indice_key="d")
        down_t.load_state_dict(down_o.state_dict()); up_t.load_state_dict(up_o.state_dict())
        with torch.no_grad():
            report[f"inverse_k3s2p1/{shape}/b{batch}"] = compare(up_o(down_o(x)), up_t(down_t(xs)))
        # the backend switch: our modules computing through spconv
        conv = SparseConv3d(4, 8, 3, 2, 1)
        with torch.no_grad():
            ref = conv(x)
            with use_backend("spconv"):
                via = conv(x)
        oc, of = by_site(ref)
        vc, vf = by_site(via)
        report[f"backend_switch/{shape}/b{batch}"] = dict(same_sites=bool(torch.equal(oc, vc)),
                                                          max_err=float((of - vf).abs().max()), n=int(oc.shape[0]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
