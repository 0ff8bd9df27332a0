"""TransHuman: parameter parity with the authors' modules, each part against a hand computation, the authors'
evaluation protocol, bad input, learning, checkpoints and tools/render.py."""
from __future__ import annotations

import importlib.util
import itertools
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.rendering.human import build_template
from perception3d.rendering.human.transhuman.dparf import DPaRF
from perception3d.rendering.human.transhuman.encoding import FrequencyEncoding, nerf_embed
from perception3d.rendering.human.transhuman.fdi import FDIHead
from perception3d.rendering.human.transhuman.kmeans import kmeans_labels, pool_by_label
from perception3d.rendering.human.transhuman.metrics import evaluate_view
from perception3d.rendering.human.transhuman.model import TransHuman
from perception3d.rendering.human.transhuman.nerf_baseline import fit_nerf
from perception3d.rendering.human.transhuman.painting import (paint_body, painted_tokens, project,
                                                               sample_feature_map, vertex_visibility)
from perception3d.rendering.human.transhuman.transhe import TransHE
from perception3d.rendering.human.transhuman.volume import composite, near_body, ray_box

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _transhuman_tiny import write_subject  # noqa: E402


def _n(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Parameter parity. Counted by hand from the authors' module definitions (pansanity666/TransHuman,
# lib/networks/cross_transformer.py Network, vision_transformer.vit_tiny(depth=12), encoder.SpatialEncoder):
#   ViT-tiny, 12 blocks of [LN 384, qkv 192·576+576, proj 192·192+192, LN 384, fc1 192·768+768, fc2 768·192+192]
#     = 12 · 444,864 + final LN 384 + cls token 192 + mask token 192                       = 5,339,136
#   heads: spatial_key_value_0/1 2·(256·128+128 + 256·256+256) = 197,376; fc_0 (192+63)·256+256 = 65,536;
#     fc_1, fc_2, fc_3, feature_fc 4·65,792; alpha_fc 257; view_fc 283·128+128 = 36,352; rgb_fc 387;
#     fc_4 16,512; alpha_res_0, rgb_res_0 2·(384·256+256); rgb_res_1 384·128+128              =   825,988
#   encoder as used (num_layers=3): ResNet-18 conv1 9,408 + bn1 128 + layer1 147,968 + layer2 525,568,
#     reduction_layer 384·192+192 = 73,920, upsample_color 3·128+128 = 512                  =   757,504
# The authors' Network object also builds, without using them in its forward pass, ResNet-18's layer3/layer4
# (10,493,440) and a SparseConvNet ("please ignore this one, not used": 4,537,472); those are not part of the model.
# The paper's 6.08 M is closest to TransHE + heads (6,165,124); the model as run has 6,922,628.
AUTHORS_TRANSHE, AUTHORS_HEADS, AUTHORS_ENCODER = 5_339_136, 825_988, 757_504


@pytest.fixture(scope="module")
def template_verts():
    return torch.as_tensor(build_template().v_template)


def test_parameter_parity_with_the_authors_model(template_verts):
    m = TransHuman(template_verts)   # the authors' settings are the defaults
    assert _n(m.transhe) == AUTHORS_TRANSHE
    assert _n(m.head) == AUTHORS_HEADS
    assert _n(m.encoder) == AUTHORS_ENCODER
    assert _n(m.dparf) == 0
    assert _n(m) == AUTHORS_TRANSHE + AUTHORS_HEADS + AUTHORS_ENCODER == 6_922_628
    assert len(m.transhe.blocks) == 12 and m.transhe.blocks[0].heads == 3 and m.transhe.norm.normalized_shape == (192,)
    assert m.num_tokens == 300 and m.dparf.knn == 7 and m.dparf.d_pe == 63
    # 300 non-empty k-means groups of the body's vertices
    assert torch.bincount(m.labels, minlength=300).min() >= 1 and m.labels.max() == 299


def test_kmeans_tokens_are_deterministic_groups():
    pts = torch.cat([torch.randn(50, 3) * 0.01 + c for c in (torch.tensor([0.0, 0, 0]), torch.tensor([1.0, 0, 0]),
                                                              torch.tensor([0.0, 1, 0]))])
    a, b = kmeans_labels(pts, 3, seed=1), kmeans_labels(pts, 3, seed=1)
    assert torch.equal(a, b)
    # the three blobs are the three clusters
    assert all(len(set(a[i * 50:(i + 1) * 50].tolist())) == 1 for i in range(3)) and len(set(a.tolist())) == 3
    x = torch.arange(12.0).view(6, 2)
    pooled = pool_by_label(x, torch.tensor([0, 0, 1, 1, 1, 2]), 3)
    assert torch.allclose(pooled, torch.tensor([[1.0, 2.0], [6.0, 7.0], [10.0, 11.0]]))
    with pytest.raises(ValueError, match="cannot form"):
        kmeans_labels(torch.randn(4, 3), 5)


def test_encodings_by_hand():
    x = torch.tensor([[0.1, -0.2, 0.3]])
    pe = FrequencyEncoding(2, 3, include_input=True)(x)
    ref = [0.1, -0.2, 0.3]
    for i in range(2):   # frequency-major, then sin / cos, then the axis (pixelNeRF's layout)
        f = math.pi * 2 ** i
        ref += [math.sin(f * v) for v in (0.1, -0.2, 0.3)] + [math.cos(f * v) for v in (0.1, -0.2, 0.3)]
    assert torch.allclose(pe[0], torch.tensor(ref), atol=1e-6)
    ne = nerf_embed(x, 1)[0]
    assert torch.allclose(ne, torch.tensor(ref[:3] + [math.sin(v) for v in ref[:3]] + [math.cos(v) for v in ref[:3]]))
    assert FrequencyEncoding(32, 3, include_input=False).d_out == 192


def _camera(eye, target=(0.0, 0.0, 0.0), f=50.0, size=64):
    from perception3d.structures.cameras import look_at

    vm = torch.linalg.inv(look_at(torch.tensor(eye), torch.tensor(target), up=(0.0, 1.0, 0.0)))
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    return vm, K


def test_painting_projection_visibility_and_sparse_tensor():
    vm, K = _camera((0.0, 0.0, -2.0))
    # three vertices: one at the centre, one 0.5 m behind it on the same ray, one off to the side
    verts = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.3, 0.0, 0.0]])
    uv, z = project(verts, vm[None], K[None])
    assert torch.allclose(z[0], torch.tensor([2.0, 2.5, 2.0]))
    assert torch.allclose(uv[0, 0], torch.tensor([32.0, 32.0]), atol=1e-4)
    # x = +0.3 m seen from −z looking at +z with up +y: the camera's x axis is −x world → u = 32 − 50·0.3/2
    assert torch.allclose(uv[0, 2], torch.tensor([32.0 - 7.5, 32.0]), atol=1e-4)
    vis = vertex_visibility(uv, z, 64, 64)
    assert vis.tolist() == [[True, False, True]]
    # a feature map whose channel 0 is the pixel's u and channel 1 is constant 2: painting reads it bilinearly
    u = torch.arange(64.0) + 0.5
    feat = torch.stack([u.expand(64, 64), torch.full((64, 64), 2.0)])[None]
    canon = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]])
    st, v2v, vis = paint_body(verts, canon, lambda uv: sample_feature_map(feat, uv, 64, 64), vm[None], K[None], 64, 64)
    per_vertex = st.feats[v2v]
    assert st.batch_size == 1 and st.feats.shape[1] == 2 and v2v.min() >= 0
    assert torch.allclose(per_vertex[0], torch.tensor([32.0, 2.0]), atol=1e-4)
    assert torch.allclose(per_vertex[1], torch.zeros(2))                 # occluded: paints zeros
    assert torch.allclose(per_vertex[2], torch.tensor([24.5, 2.0]), atol=1e-4)
    # the painted body lives in canonical space: its voxels are at the canonical vertices
    centres = (st.coords[:, [3, 2, 1]].float() + 0.5) * st.voxel_size[0] + torch.tensor(st.origin[::-1])
    assert torch.allclose(centres[v2v], canon, atol=st.voxel_size[0])
    tok = painted_tokens(st, v2v, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(tok[0], torch.tensor([[16.0, 1.0], [24.5, 2.0]]), atol=1e-4)


def test_dparf_local_frames_by_hand():
    d = DPaRF(knn=2, num_freqs=1, alpha=0.5)
    tok_pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])    # 90° about z (canonical → posed)
    tok_rot = torch.stack([rz, torch.eye(3), torch.eye(3)])
    tok_feat = torch.tensor([[[1.0], [3.0], [100.0]]])                          # V = 1, C = 1
    x = torch.tensor([[0.0, 0.5, 0.0]])
    out = d(x, tok_pos, tok_rot, tok_feat)[0, 0]
    d0, d1 = 0.5, math.hypot(1.0, 0.5)
    w0 = math.exp(-d0 / 0.5) / (math.exp(-d0 / 0.5) + math.exp(-d1 / 0.5))
    # token 0: Rᵀ (x − t) = Rz⁻¹ (0, .5, 0) = (.5, 0, 0) (back in the canonical frame); token 1: (−1, .5, 0)
    l0, l1 = torch.tensor([0.5, 0.0, 0.0]), torch.tensor([-1.0, 0.5, 0.0])
    enc = lambda l: torch.cat([l, torch.sin(math.pi * l), torch.cos(math.pi * l)])  # noqa: E731
    ref = w0 * torch.cat([torch.tensor([1.0]), enc(l0)]) + (1 - w0) * torch.cat([torch.tensor([3.0]), enc(l1)])
    assert torch.allclose(out, ref, atol=1e-5)


def test_fdi_cross_attention_by_hand():
    torch.manual_seed(0)
    h = FDIHead(human_dim=5, pixel_dim=6, width=8, att_dim=4)
    human, pixel = torch.randn(3, 2, 8), torch.randn(3, 2, 8)          # V = 3 views, P = 2 points
    out = h.cross_attention(human, pixel)
    kv0, kv1 = h.spatial_key_value_0, h.spatial_key_value_1
    for p in range(2):
        for vq in range(3):
            q = kv1.key_embed(human[vq, p])
            logits = torch.stack([kv0.key_embed(pixel[vk, p]) @ q for vk in range(3)]) / 2.0   # √4
            a = torch.softmax(logits, 0)
            ref = kv1.value_embed(human[vq, p]) + sum(a[vk] * kv0.value_embed(pixel[vk, p]) for vk in range(3))
            assert torch.allclose(out[vq, p], ref, atol=1e-5)
    raw = h(torch.randn(3, 2, 5), torch.randn(3, 2, 6), torch.nn.functional.normalize(torch.randn(2, 3), dim=-1))
    assert raw.shape == (2, 4)


def test_transhe_is_global_and_permutation_equivariant():
    torch.manual_seed(0)
    t = TransHE(dim=12, depth=2, heads=3).eval()
    tok, pos = torch.randn(1, 6, 12), torch.rand(6, 3)
    y = t(tok, pos)
    perm = torch.tensor([3, 1, 5, 0, 2, 4])
    assert torch.allclose(t(tok[:, perm], pos[perm]), y[:, perm], atol=1e-5)
    tok2 = tok.clone()
    tok2[0, 0, 0] += 1.0
    assert (t(tok2, pos)[0, 5] - y[0, 5]).abs().max() > 1e-4   # token 0 reaches token 5 (global relationships)


def test_volume_rendering_by_hand():
    o, d = torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    near, far, hit = ray_box(o, d, torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    assert hit.item() and near.item() == pytest.approx(2.0) and far.item() == pytest.approx(4.0)
    assert not ray_box(o, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[-1.0, -1, -1], [1.0, 1, 1]]))[2].item()
    z = torch.tensor([[2.0, 3.0]])
    raw = torch.tensor([[[0.0, 0.0, 0.0, math.log(2.0)], [10.0, -10.0, 10.0, 100.0]]])   # σ0 = ln 2 over 1 m
    rgb, acc, depth = composite(raw, z, d)
    # sample 0: α = 1 − e^{−ln2} = 0.5, colour sigmoid(0) = 0.5; sample 1: opaque (last interval 1e10)
    s = torch.sigmoid(torch.tensor([10.0, -10.0, 10.0]))
    assert torch.allclose(rgb[0], 0.5 * 0.5 + 0.5 * s, atol=1e-5)
    assert acc.item() == pytest.approx(1.0) and depth.item() == pytest.approx(2.5)
    # the fast-inference test keeps every sample within 0.1 m of the body and drops those far from it
    v = torch.rand(300, 3, generator=torch.Generator().manual_seed(0))
    p = torch.rand(5000, 3, generator=torch.Generator().manual_seed(1)) * 3 - 1
    dist = torch.cdist(p, v).min(1).values
    keep = near_body(v, 0.1)(p)
    assert keep[dist < 0.1].all() and not keep[dist > 0.1 * math.sqrt(3) + 0.04].any()
    # exactly the cube dilation of the occupied 2 cm cells by ⌈0.1 / 0.02⌉ = 5 cells (brute force: a sample is kept
    # iff its cell is within Chebyshev distance 5 of a vertex's cell, both on the grid anchored 6 cells below)
    lo = v.min(0).values - 6 * 0.02
    cp, cv = ((p - lo) / 0.02).floor().long(), ((v - lo) / 0.02).long()
    cheb = (cp[:, None] - cv[None]).abs().max(-1).values.min(1).values
    assert torch.equal(keep, (cheb <= 5) & (cp >= 0).all(-1))


def test_metrics_follow_the_authors_protocol():
    g = torch.rand(40, 40, 3, generator=torch.Generator().manual_seed(0))
    box = torch.zeros(40, 40, dtype=torch.bool)
    box[10:30, 5:25] = True
    p = g.clone()
    p[~box] = 1 - p[~box]                       # errors outside the box do not count
    p[box] += 0.1
    m = evaluate_view(p.clamp(0, 1), g, box)
    mse = ((p.clamp(0, 1) - g)[box] ** 2).mean()
    assert m["psnr"] == pytest.approx(-10 * math.log10(float(mse)), rel=1e-6)
    from skimage.metrics import structural_similarity
    ref = structural_similarity(p.clamp(0, 1)[10:30, 5:25].double().numpy(), g[10:30, 5:25].double().numpy(),
                                channel_axis=-1, data_range=2.0)
    assert m["ssim"] == pytest.approx(ref) and m["lpips"] is None
    assert evaluate_view(g, g, box)["ssim"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not in the view"):
        evaluate_view(g, g, torch.zeros(40, 40, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------------------------
# Data, bad input, training, checkpoints, tools
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("th_tiny")
    for i, n in enumerate(("s0", "s1", "s2")):
        write_subject(root, n, seed=i, n_cams=6, n_frames=2, size=48)
    return root


def _cfg(root, **train):
    return dict(method="transhuman",
                data=dict(root=str(root), train_subjects=["s0", "s1"], test_subjects=["s2"], input_views=[0, 2, 4],
                          target_views=[1, 3], ratio=1.0, allow_template=True),
                model=dict(depth=1, num_tokens=64, head_width=64, att_dim=32),
                train={**dict(max_steps=2, n_rays=96, n_samples=12, log_every=1), **train})


def test_bad_input_names_the_file(tiny_root, tmp_path):
    from perception3d.rendering.human.transhuman.trainer import TransHumanTrainer

    def copy():
        dst = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        for n in ("s0", "s1", "s2"):
            shutil.copytree(tiny_root / n, dst / n)
        return dst

    # a camera count that does not match the images of a frame
    r = copy()
    ann = np.load(r / "s0" / "annots.npy", allow_pickle=True).item()
    ann["ims"][1]["ims"] = ann["ims"][1]["ims"][:-1]
    np.save(r / "s0" / "annots.npy", ann, allow_pickle=True)
    with pytest.raises(ValueError, match=r"s0/annots\.npy.*frame 1 lists 5 images but there are 6 cameras"):
        TransHumanTrainer(_cfg(r), tmp_path / "w", progress=False)
    # a mask of another size
    r = copy()
    import imageio.v3 as iio
    iio.imwrite(r / "s1" / "mask" / "Camera_B3" / "000000.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match=r"s1/mask/Camera_B3/000000\.png: mask is 30x20"):
        TransHumanTrainer(_cfg(r), tmp_path / "w", progress=False)
    # a frame without vertices
    r = copy()
    (r / "s2" / "new_vertices" / "1.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"s2/new_vertices/1\.npy"):
        TransHumanTrainer(_cfg(r), tmp_path / "w", progress=False)
    # vertices of another body model
    r = copy()
    np.save(r / "s0" / "new_vertices" / "0.npy", np.zeros((10, 3), np.float32))
    t = TransHumanTrainer(_cfg(r), tmp_path / "w", progress=False)
    with pytest.raises(ValueError, match=r"s0/new_vertices/0\.npy: 10 vertices, the body model has"):
        t.train_subjects[0].frame_body(0)
    # reference views the subject does not have
    cfg = _cfg(tiny_root)
    cfg["data"]["input_views"] = [0, 7, 15]
    with pytest.raises(ValueError, match=r"s2/annots\.npy: input view 7 requested, the subject has 6 cameras"):
        TransHumanTrainer(cfg, tmp_path / "w", progress=False)
    with pytest.raises(ValueError, match="data: unknown key"):
        TransHumanTrainer({**cfg, "data": {**cfg["data"], "input_view": [0]}}, tmp_path / "w", progress=False)


def test_gradients_reach_the_encoder_through_the_painted_body(tiny_root, tmp_path):
    from perception3d.rendering.human.transhuman.trainer import TransHumanTrainer

    t = TransHumanTrainer(_cfg(tiny_root), tmp_path / "w", progress=False)
    t.train_step()
    m = t.model
    for name, p in (("reduction (painting)", m.encoder.reduction.weight), ("layer2", m.encoder.layer2[0].conv1.weight),
                    ("transhe", m.transhe.blocks[0].qkv.weight), ("fdi", m.head.spatial_key_value_0.key_embed.weight)):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_colour_augmentation_permutes_references_and_target_alike(tiny_root, tmp_path, monkeypatch):
    """train.colour_aug: the reference images the encoder sees and the target colours of the loss get the same
    non-identity channel order (a render that copies the references' colours stays exact); off: untouched."""
    from perception3d.rendering.human.transhuman import trainer as tr

    seen = {}
    real_encode = tr.TransHuman.encode

    def encode(self, inp):
        seen["images"] = inp.images.clone()
        return real_encode(self, inp)

    def mse(pred, target):
        seen["target"] = target.clone()
        return (pred * 0).sum()

    monkeypatch.setattr(tr.TransHuman, "encode", encode)
    monkeypatch.setattr(tr.F, "mse_loss", mse)
    for p, permuted in ((1.0, True), (0.0, False)):
        t = tr.TransHumanTrainer(_cfg(tiny_root, colour_aug=p), tmp_path / f"w{p}", progress=False)
        g = t.gen.get_state()
        t.train_step()
        # replay the step's draws without the augmentation to get the untouched views and rays
        t.gen.set_state(g)
        s = t.train_subjects[t._randint(len(t.train_subjects))]
        f = t._randint(s.num_frames)
        perm = torch.randperm(s.num_cameras, generator=t.gen).tolist()
        views, target = perm[:3], perm[t._randint(s.num_cameras)]
        order = t.colour_permutation()
        assert (order is not None) == permuted
        raw = s.inputs(f, views).images
        box = tr.body_box(s.inputs(f, views).verts, t.data_cfg.box_pad)
        rgb = t.sample_rays(s, f, target, box)[2]
        if permuted:
            assert order in tr.COLOUR_PERMUTATIONS and order != [0, 1, 2]
            assert torch.equal(seen["images"], raw[..., order]) and torch.equal(seen["target"], rgb[:, order])
            assert not torch.equal(seen["images"], raw)
        else:
            assert torch.equal(seen["images"], raw) and torch.equal(seen["target"], rgb)
    assert sorted(map(tuple, [*tr.COLOUR_PERMUTATIONS, [0, 1, 2]])) == sorted(itertools.permutations(range(3)))


def test_patch_sampling_gives_square_patches_on_the_body_and_the_dssim_term(tiny_root, tmp_path):
    """train.patch_size: the rays are n_rays // P² row-major P × P blocks of the target image, each holding a
    body-mask pixel; train.lambda_dssim adds λ · (1 − SSIM) over those patches (the scipy SSIM as reference)."""
    from perception3d.ops.image_quality import ssim_map
    from perception3d.rendering.human.transhuman import trainer as tr
    from perception3d.rendering.human.transhuman.volume import camera_rays

    t = tr.TransHumanTrainer(_cfg(tiny_root, patch_size=5, n_rays=75, lambda_dssim=0.2), tmp_path / "w",
                             progress=False)
    s, f, c = t.train_subjects[0], 0, 1
    box = tr.body_box(s.inputs(f, [0, 2, 4]).verts, t.data_cfg.box_pad)
    o, d, rgb = t.sample_rays(s, f, c, box)
    assert o.shape == d.shape == rgb.shape == (75, 3)
    img, msk = s.view(f, c)
    cam = s.cameras[c]
    _, all_d = camera_rays(cam.viewmats[0], cam.Ks[0], s.width, s.height)
    j = (all_d[None] == d[:, None]).all(-1).float().argmax(1).reshape(3, 5, 5)
    offsets = torch.arange(5)[:, None] * s.width + torch.arange(5)[None]
    assert torch.equal(j - j[:, :1, :1], offsets.expand(3, 5, 5))
    assert msk.flatten()[j.reshape(3, -1)].any(1).all()
    assert torch.equal(rgb, img.reshape(-1, 3)[j.reshape(-1)])
    pred = torch.rand(75, 3, generator=torch.Generator().manual_seed(0))
    ref = ssim_map(pred.reshape(3, 5, 5, 3), rgb.reshape(3, 5, 5, 3), window=5).mean()
    expected = ((pred - rgb) ** 2).mean() + 0.2 * (1 - ref)
    assert torch.allclose(t.photometric_loss(pred, rgb).double(), expected.double(), atol=1e-5)
    t.tcfg.lambda_dssim = 0.0
    assert torch.allclose(t.photometric_loss(pred, rgb), ((pred - rgb) ** 2).mean())
    t.tcfg.patch_size = 200
    with pytest.raises(ValueError, match="patch_size 200 is larger"):
        t.sample_rays(s, f, c, box)


def test_train_skip_far_evaluates_only_the_samples_near_the_body(tiny_root, tmp_path, monkeypatch):
    """train.train_skip_far: a training step queries the network only at its samples near the body (the
    evaluation renderer's test), the very same samples as without it minus the far ones; off: all of them."""
    from perception3d.rendering.human.transhuman import trainer as tr
    from perception3d.rendering.human.transhuman.volume import near_body

    seen = []
    real_query = tr.TransHuman.query

    def query(self, ctx, pts, viewdir):
        seen.append((pts.clone(), ctx.inp.verts.clone()))
        return real_query(self, ctx, pts, viewdir)

    monkeypatch.setattr(tr.TransHuman, "query", query)
    tr.TransHumanTrainer(_cfg(tiny_root), tmp_path / "off", seed=3, progress=False).train_step()
    tr.TransHumanTrainer(_cfg(tiny_root, train_skip_far=0.02), tmp_path / "on", seed=3, progress=False).train_step()
    (all_pts, verts), (near_pts, verts_on) = seen
    assert torch.equal(verts, verts_on)
    keep = near_body(verts, 0.02)(all_pts)
    assert 0 < int(keep.sum()) < all_pts.shape[0]
    assert torch.equal(near_pts, all_pts[keep])


def test_training_learns_and_checkpoint_renders(tiny_root, tmp_path):
    from perception3d.rendering.human.transhuman.trainer import TransHumanTrainer, load_transhuman
    from perception3d.rendering.human.transhuman.volume import body_box

    torch.manual_seed(0)
    t = TransHumanTrainer(_cfg(tiny_root, max_steps=2, num_threads=1), tmp_path / "w", progress=False)
    # the network fits one frame's target view from three others (fixed rays): the loss falls
    s, m = t.train_subjects[0], t.model
    inp = s.inputs(0, [0, 2, 4])
    box = body_box(inp.verts, (0.0, 0.0, 0.05))
    o, d, rgb = t.sample_rays(s, 0, 1, box)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        out = m.render_rays(m.encode(inp), o, d, box, 12)
        loss = torch.nn.functional.mse_loss(out["rgb"], rgb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    # the training loop: steps, evaluates the unseen subject, writes the grid, metrics and the checkpoint
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    res = t.train()
    assert res["threads"] == 1 and torch.get_num_threads() == 2   # train.num_threads while training, then restored
    torch.set_num_threads(threads)
    assert res["step"] == 2 and np.isfinite(res["psnr"]) and len(res["per_view"]) == 2
    assert (tmp_path / "w" / "renders" / "step_000002.png").is_file() and (tmp_path / "w" / "metrics.json").is_file()
    ck = t.ckpt_path
    model, c = load_transhuman(ck)
    for a, b in zip(model.state_dict().values(), t.model.state_dict().values()):
        assert torch.equal(a, b)
    # tools/render.py: the unseen subject's target views with the authors' metrics, and a novel-pose orbit
    spec = importlib.util.spec_from_file_location("render_tool", ROOT / "tools" / "render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main([str(ck), "--cameras", "test", "--out", str(tmp_path / "r")])
    assert res["n_views"] == 2 and res["subject"] == "s2" and np.isfinite(res["psnr"]) and 0 < res["ssim"] <= 1
    assert (tmp_path / "r" / "metrics.json").is_file() and (tmp_path / "r" / "rgb" / "0001.png").is_file()
    res = mod.main([str(ck), "--cameras", "orbit", "--frame", "0", "1", "--n-frames", "4", "--width", "24",
                    "--height", "24", "--out", str(tmp_path / "o"), "--video", str(tmp_path / "o.mp4")])
    assert res["n_views"] == 4 and res["frames"] == [0, 1] and res["subject"] == "s2"
    import imageio.v3 as iio
    renders = np.stack([iio.imread(tmp_path / "o" / "rgb" / f"{i:04d}.png") for i in range(4)])
    assert renders.shape == (4, 24, 24, 3)
    # the video as a user gets it: an MP4 that reads back with every orbit frame (lossy: close to the PNGs)
    assert res["video"] == str(tmp_path / "o.mp4") and (tmp_path / "o.mp4").stat().st_size > 0
    video = iio.imread(tmp_path / "o.mp4")
    assert video.shape == renders.shape
    assert np.abs(video.astype(float) - renders.astype(float)).mean() < 12


def test_per_scene_nerf_fits_its_views():
    vm, K = _camera((0.0, 0.0, -2.0), f=20.0, size=16)
    img = torch.zeros(1, 16, 16, 3)
    img[0, 4:12, 4:12] = torch.tensor([0.9, 0.2, 0.1])
    box = torch.tensor([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])
    net, info = fit_nerf(img, vm[None], K[None], box, cpu_seconds=60, max_steps=60, n_rays=128, n_samples=16,
                         lr=5e-3, width=32, depth=2)
    assert info["steps"] == 60 and info["loss"] < 0.02
    # the body is opaque in the fit, the black background around it is not
    from perception3d.rendering.human.transhuman.volume import camera_rays, render_rays
    o, d = camera_rays(vm, K, 16, 16)
    with torch.no_grad():
        out = render_rays(net, o, d, box, 16, last_interval=None)
    acc = out["acc"].view(16, 16)
    assert acc[5:11, 5:11].mean() > 0.8 and torch.cat([acc[:2].flatten(), acc[-2:].flatten()]).mean() < 0.3


def test_per_scene_nerf_cannot_collapse_to_an_empty_field():
    """The subject4 failure: a NeRF whose every density pre-activation is below zero rendered black, and a ReLU
    density gave it no gradient to leave. mip-NeRF's softplus(x − 1) keeps a gradient, so the field refills."""
    from perception3d.rendering.human.transhuman.nerf_baseline import PerSceneNeRF
    from perception3d.rendering.human.transhuman.volume import camera_rays, render_rays
    torch.manual_seed(0)
    vm, K = _camera((0.0, 0.0, -2.0), f=20.0, size=16)
    img = torch.zeros(16, 16, 3)
    img[4:12, 4:12] = torch.tensor([0.9, 0.2, 0.1])
    box = torch.tensor([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])
    o, d = camera_rays(vm, K, 16, 16)
    on = torch.zeros(16, 16, dtype=torch.bool)
    on[4:12, 4:12] = True
    on = on.flatten()
    net = PerSceneNeRF(width=32, depth=2)
    with torch.no_grad():
        net.sigma.weight.mul_(0.1)
        net.sigma.bias.fill_(-3.0)    # dead start: every σ pre-activation below zero (a ReLU density: σ ≡ 0)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    acc0 = None
    for step in range(40):
        out = render_rays(net, o[on], d[on], box, 16, last_interval=None)
        loss = torch.nn.functional.mse_loss(out["rgb"], img.reshape(-1, 3)[on])
        opt.zero_grad()
        loss.backward()
        if step == 0:
            acc0 = out["acc"].mean().item()
            assert acc0 < 0.05 and net.sigma.bias.grad.abs().item() > 0   # a ReLU density: exactly 0
        opt.step()
    assert out["acc"].mean().item() > 0.3 and loss.item() < 0.1


def test_compare_with_per_scene_nerf_writes_the_table(tiny_root, tmp_path):
    from perception3d.rendering.human.transhuman.compare import compare_with_nerf
    from perception3d.rendering.human.transhuman.trainer import TransHumanTrainer

    t = TransHumanTrainer(_cfg(tiny_root), tmp_path / "w", progress=False)
    ck = t.save_checkpoint()
    res = compare_with_nerf(ck, tmp_path / "c", nerf_cpu_seconds=30, frames=[0], progress=False, max_steps=3,
                            n_rays=32, width=16, depth=2)
    assert len(res["per_view"]) == 2 and res["per_view"][-1]["nerf_fit"]["steps"] == 3
    for m in ("transhuman", "nerf"):
        assert np.isfinite(res[m]["psnr"]) and 0 < res[m]["ssim"] <= 1
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "per-scene NeRF" in md and "| s2 | 0 |" in md and "| mean of 2 views |" in md
    assert [r["subject"] for r in res["per_scene"]] == ["s2"] and res["per_scene"][0]["nerf_fit"]["steps"] == 3
    import imageio.v3 as iio
    assert iio.imread(tmp_path / "c" / "compare_grid.png").shape == (2 * 48, 6 * 48, 3)
    # more target views than the config's: the table also gives the mean over the config's own target views
    more = compare_with_nerf(ck, tmp_path / "m", nerf_cpu_seconds=30, frames=[0], progress=True, max_steps=3,
                             n_rays=32, width=16, depth=2, target_views=[1, 3, 5])
    assert [r["view"] for r in more["per_view"]] == [1, 3, 5] and more["target_views"] == [1, 3, 5]
    views13 = [r for r in more["per_view"] if r["view"] in (1, 3)]
    assert more["config_target_views"]["nerf"]["psnr"] == pytest.approx(np.mean([r["nerf"]["psnr"] for r in views13]))
    assert "mean of the config's target views (1, 3), 2 views" in (tmp_path / "m" / "compare.md").read_text()
    with pytest.raises(ValueError, match="reference views"):
        compare_with_nerf(ck, tmp_path / "x", nerf_cpu_seconds=1, progress=False, target_views=[0, 1])
    # the per-scene NeRF fits are reused from an earlier run: the same scores, no fit (a missing file would raise)
    again = compare_with_nerf(ck, tmp_path / "r", nerf_cpu_seconds=30, frames=[0], progress=False, max_steps=3,
                              n_rays=32, width=16, depth=2, target_views=[1, 5], nerf_from=tmp_path / "m")
    by_view = {r["view"]: r["nerf"] for r in more["per_view"]}
    assert [r["nerf"] for r in again["per_view"]] == [by_view[1], by_view[5]]
    with pytest.raises(ValueError, match=r"nerf_s2_0\.pt: fitted to .*'budget_cpu_s': 30\.0"):
        compare_with_nerf(ck, tmp_path / "r2", nerf_cpu_seconds=60, frames=[0], progress=False, max_steps=3,
                          n_rays=32, width=16, depth=2, target_views=[1], nerf_from=tmp_path / "m")
    with pytest.raises(ValueError, match=r"no render of target views \[5\]"):   # "c" scored views 1 and 3
        compare_with_nerf(ck, tmp_path / "r3", nerf_cpu_seconds=30, frames=[0], progress=False, max_steps=3,
                          n_rays=32, width=16, depth=2, target_views=[1, 5], nerf_from=tmp_path / "c")


@pytest.mark.parametrize("name", ["transhuman_human_mini", "transhuman_zju"])
def test_configs_are_valid_and_zju_has_the_authors_settings(name):
    from perception3d.cli import load_config
    from perception3d.registry import RENDER_METHODS
    from perception3d.rendering.config import section
    from perception3d.rendering.human.transhuman.config import THDataConfig, THModelConfig, THTrainConfig

    cfg = load_config(ROOT / "configs" / f"{name}.py")
    assert RENDER_METHODS.get(cfg.method).__name__ == "TransHumanTrainer"
    d, m, t = (section(c, cfg[k], k) for c, k in ((THDataConfig, "data"), (THModelConfig, "model"),
                                                  (THTrainConfig, "train")))
    assert set(d.train_subjects).isdisjoint(d.test_subjects)          # the test subjects are unseen
    assert tuple(d.input_views) == (0, 7, 15) and tuple(d.target_views) == (3, 5, 10, 12, 18, 20)
    assert m.num_tokens == 300 and m.knn == 7 and m.dim == 192 and m.heads == 3
    if name == "transhuman_zju":
        assert (m.depth, m.head_width, t.n_rays, t.n_samples, t.lr, d.ratio) == (12, 256, 1024, 64, 7e-4, 0.5)
    else:
        assert d.builtin and d.ratio * d.builtin["image_size"] <= 256 and t.max_cpu_minutes <= 20
        # every named person is in the generated dataset (caught here, not after a minute of generation), and
        # the unseen people are those of the 6-subject dataset (a subject depends only on the seed and its index)
        people = {f"subject{i}" for i in range(d.builtin["n_subjects"])}
        assert set(d.train_subjects) | set(d.test_subjects) <= people
        assert tuple(d.test_subjects) == ("subject3", "subject4", "subject5") and len(d.train_subjects) >= 10


def test_encoder_loads_a_local_resnet18_state_dict(tmp_path):
    from perception3d.rendering.human.transhuman.encoder import ImageEncoder

    e = ImageEncoder()
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in e.state_dict().items()
          if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")}
    sd["layer3.0.conv1.weight"], sd["fc.weight"] = torch.zeros(256, 128, 3, 3), torch.zeros(1000, 512)  # ignored
    torch.save(sd, tmp_path / "resnet18.pth")
    e2 = ImageEncoder(weights=tmp_path / "resnet18.pth")
    assert e2.pretrained and torch.equal(e2.layer2[0].downsample[0].weight, sd["layer2.0.downsample.0.weight"])
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        ImageEncoder(weights=tmp_path / "missing.pth")
    torch.save({"conv1.weight": sd["conv1.weight"]}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth: not a resnet18"):
        ImageEncoder(weights=tmp_path / "partial.pth")
