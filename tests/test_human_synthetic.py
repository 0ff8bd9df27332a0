"""The built-in multi-view human dataset and its mesh rasteriser: coverage and z-order worked out by hand; the
generated folder read back by the ZJU-MoCap reader (calibration consistent with the meshes, parameters that
reproduce the stored body vertices through LBS); deterministic from the seed; generated atomically."""

import hashlib
import json

import numpy as np
import pytest
import torch

from perception3d.rendering.human import BodyModel, build_template
from perception3d.rendering.human import synthetic as syn
from perception3d.rendering.human.mesh_raster import rasterize_mesh
from perception3d.rendering.human.zju_mocap import read_zju_mocap

SMALL = dict(n_subjects=2, motions=("walk", "squat_turn"), frames_per_motion=1, n_cameras=21, image_size=48)


def test_rasterize_one_triangle_by_hand():
    # camera at the origin, f = 10, principal point (4, 4) on an 8 × 8 image; triangle at depth 2 whose projection
    # is (4, 4), (8, 4), (4, 8): pixel centres (j + .5, i + .5) with j, i >= 4 and j + i <= 7 are inside
    K = torch.tensor([[10.0, 0, 4], [0, 10.0, 4], [0, 0, 1]])
    v = torch.tensor([[0.0, 0, 2], [0.8, 0, 2], [0, 0.8, 2]])
    r = rasterize_mesh(v, torch.tensor([[0, 1, 2]]), K, 8, 8)
    want = np.zeros((8, 8), bool)
    for i in range(8):
        for j in range(8):
            want[i, j] = j >= 4 and i >= 4 and (j + 0.5 - 4) + (i + 0.5 - 4) <= 4
    np.testing.assert_array_equal(r.mask.numpy(), want)
    np.testing.assert_allclose(r.depth[r.mask].numpy(), 2.0, atol=1e-6)
    # barycentrics reproduce the pixel centre: pixel (4, 5) → x = (5.5 − 4)/10·2 = 0.3, y = 0.1
    p = (r.bary[4, 5][:, None] * v).sum(0)
    np.testing.assert_allclose(p.numpy(), [0.3, 0.1, 2.0], atol=1e-6)


def test_rasterize_nearest_triangle_wins():
    K = torch.tensor([[10.0, 0, 4], [0, 10.0, 4], [0, 0, 1]])
    big = torch.tensor([[-2.0, -2, 3], [2, -2, 3], [0, 2, 3]])
    near = torch.tensor([[-2.0, -2, 1], [2, -2, 1], [0, 2, 1]])         # same shape, closer: covers everything
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    r = rasterize_mesh(torch.cat([big, near]), faces, K, 8, 8)
    assert (r.face_id[r.mask] == 1).all() and r.mask.all()
    np.testing.assert_allclose(r.depth.numpy(), 1.0, atol=1e-6)
    r = rasterize_mesh(torch.cat([near, big]), faces, K, 8, 8)           # order does not matter
    assert (r.face_id == 0).all()


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return syn.ensure_synthetic_humans(tmp_path_factory.mktemp("syn") / "humans", **SMALL)


def test_synthetic_reads_back_as_zju(small_root):
    index = json.loads((small_root / "synthetic.json").read_text())
    assert index["subjects"] == ["subject0", "subject1"]
    body = BodyModel(build_template())
    for name in index["subjects"]:
        seq = read_zju_mocap(small_root / name)
        assert seq.num_cameras == 21 and len(seq) == 2 and seq.frame_ids == [0, 1]
        assert (seq.cameras.width, seq.cameras.height) == (48, 48)
        for f in range(len(seq)):
            # the stored parameters reproduce the stored body vertices (shapes: the template's 2 coefficients)
            p = seq.params(f)
            assert torch.all(p["shapes"][2:] == 0)
            out = body(betas=p["shapes"][None, :2], pose=p["poses"][None], Rh=p["Rh"][None], Th=p["Th"][None])
            np.testing.assert_allclose(out.vertices[0].numpy(), seq.vertices(f).numpy(), atol=1e-4)
            # clothing: the ground-truth surface lies 0.3–3 cm outside the body, feet on the floor
            gt, faces = syn.synthetic_gt_mesh(seq.root, seq.frame_ids[f])
            d = (gt - seq.vertices(f)).norm(dim=-1)
            assert 0.003 < float(d.mean()) < 0.03 and abs(float(gt[:, 2].min())) < 1e-5
            # calibration round trip (mm, OpenCV principal point): every ground-truth vertex projects into the mask
            uv, depth = seq.cameras.project(gt)
            for c in range(0, 21, 5):
                m = seq.mask(f, c)
                ij = uv[c].floor().long()
                inside = (ij[:, 0] >= 0) & (ij[:, 0] < 48) & (ij[:, 1] >= 0) & (ij[:, 1] < 48)
                assert inside.float().mean() > 0.99
                # a contour vertex may fall just outside its pixel's centre: within one pixel of the mask always,
                # and the unshifted projection fits the silhouettes better than one shifted by half a pixel
                dil = torch.nn.functional.max_pool2d(m[None, None].float(), 3, 1, 1)[0, 0] > 0
                assert dil[ij[inside, 1], ij[inside, 0]].float().mean() > 0.999, (name, f, c)
                rates = []
                for shift in (0.0, 0.5, -0.5):
                    s = (uv[c] + shift).floor().long().clamp(0, 47)
                    rates.append(float(m[s[:, 1], s[:, 0]].float().mean()))
                assert rates[0] > 0.8 and rates[0] > max(rates[1:]), (name, f, c, rates)
                img = seq.image(f, c)
                # black background (JPEG ringing only next to the silhouette), a lit body
                assert float(img[~dil].max()) < 0.06 and float(img[m].mean()) > 0.1


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_synthetic_deterministic_and_atomic(tmp_path, small_root, monkeypatch):
    one = dict(SMALL, n_subjects=1, motions=("wave",), n_cameras=21)
    a = syn.ensure_synthetic_humans(tmp_path / "a", **one)
    b = syn.ensure_synthetic_humans(tmp_path / "b", **one)
    assert _digest(a) == _digest(b)
    c = syn.ensure_synthetic_humans(tmp_path / "c", **dict(one, seed=1))
    assert _digest(a) != _digest(c)
    assert syn.ensure_synthetic_humans(tmp_path / "a", **one) == a          # reused, not regenerated
    with pytest.raises(ValueError, match="settings"):
        syn.ensure_synthetic_humans(tmp_path / "a", **dict(one, seed=3))
    # a failure half-way leaves neither the folder nor its temporary
    calls = []

    def boom(out, *args):
        calls.append(out)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(out, *args)

    real = syn._write_subject
    monkeypatch.setattr(syn, "_write_subject", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        syn.ensure_synthetic_humans(tmp_path / "d", **dict(one, n_subjects=2))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["a", "b", "c"]
    # a subject depends on the seed and its index only: more subjects add people, they do not change the others
    # (a dataset generated with more held-out subjects keeps the figures measured on the first ones)
    monkeypatch.setattr(syn, "_write_subject", real)
    e = syn.ensure_synthetic_humans(tmp_path / "e", **dict(one, n_subjects=2))
    assert _digest(e / "subject0") == _digest(a / "subject0") != _digest(e / "subject1")


def test_synthetic_bad_settings():
    with pytest.raises(ValueError, match="unknown motion"):
        syn.synthetic_settings(motions=("dance",))
    with pytest.raises(ValueError, match="image_size"):
        syn.synthetic_settings(image_size=512)


def test_create_data_tool_human(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("create_data", Path(__file__).resolve().parents[1] / "tools" /
                                                  "create_data.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    root = tmp_path / "h"
    tool.main(["human", "--root", str(root), "--subjects", "1", "--motions", "reach", "--frames-per-motion", "1",
               "--cameras", "21", "--size", "32"])
    seq = read_zju_mocap(root / "subject0")
    assert seq.num_cameras == 21 and seq.cameras.width == 32 and len(seq) == 1
