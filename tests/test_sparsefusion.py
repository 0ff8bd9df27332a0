"""SparseFusion model: image backbone layout and checkpoint loading, the head's building blocks on hand-made
answers, the semantic transfer's projection, a tiny multi-camera model that learns on CPU, the ablation switches,
the nuScenes config's parameter count against the authors' model, and the real nuScenes sample through the model."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perception3d.models  # noqa: F401,E402  (registration)
from perception3d.models.fusion.camera_branch import camera_targets  # noqa: E402
from perception3d.models.fusion.image_backbone import (ImageFPN, ImageResNet,  # noqa: E402
                                                       load_image_backbone_checkpoint)
from perception3d.models.fusion.layers import (decode_boxes, encode_boxes, heatmap_topk,  # noqa: E402
                                               hungarian_match)
from perception3d.models.fusion.transfer import SemanticTransfer  # noqa: E402
from perception3d.registry import MODELS  # noqa: E402
from _sparsefusion_tiny import PC_RANGE, cameras, tiny_batch, tiny_cfg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuscenes_demo"


def _n(m):
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------------------------- image backbone
def test_resnet_fpn_parameter_counts_and_strides():
    # torchvision's resnet18 / resnet50 minus the 1000-class fc (513,000 / 2,049,000), mmdet's FPN(256, 5 outs)
    assert _n(ImageResNet(18)) == 11_689_512 - 513_000
    r50 = ImageResNet(50)
    assert _n(r50) == 25_557_032 - 2_049_000 == 23_508_032
    assert _n(ImageFPN([256, 512, 1024, 2048], 256, num_outs=5)) == 3_344_384
    r18 = ImageResNet(18).eval()
    feats = r18(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 16, 24), (128, 8, 12), (256, 4, 6), (512, 2, 3)]
    outs = ImageFPN([64, 128, 256, 512], 32, num_outs=5)(feats)
    assert [tuple(o.shape[1:]) for o in outs] == [(32, 16, 24), (32, 8, 12), (32, 4, 6), (32, 2, 3), (32, 1, 2)]


def test_resnet_frozen_stages_and_norm_eval():
    m = ImageResNet(18, frozen_stages=1, norm_eval=True).train()
    assert not any(p.requires_grad for p in m.layer1.parameters()) and not m.conv1.weight.requires_grad
    assert all(p.requires_grad for p in m.layer2.parameters())
    assert not m.layer3[0].bn1.training  # norm_eval: BN statistics frozen while training


def test_checkpoint_in_torchvision_layout_loads(tmp_path):
    torch.manual_seed(0)
    src = ImageResNet(18).eval()
    sd = {f"img_backbone.{k}": v for k, v in src.state_dict().items()}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": sd}, path)
    dst = ImageResNet(18, pretrained=str(path)).eval()
    x = torch.rand(1, 3, 32, 32)
    for a, b in zip(src(x), dst(x)):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="layer1.0.conv1.weight.*wrong depth"):
        load_image_backbone_checkpoint(ImageResNet(50), path)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        ImageResNet(18, pretrained=str(tmp_path / "absent.pth"))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no key matches"):
        load_image_backbone_checkpoint(ImageResNet(18), tmp_path / "other.pth")


# --------------------------------------------------------------------------------------------- head blocks
def test_heatmap_topk_keeps_local_maxima_only():
    hm = torch.zeros(1, 2, 5, 5)
    hm[0, 0, 2, 2], hm[0, 0, 2, 3] = 0.9, 0.8      # the 0.8 neighbour is suppressed by the 3x3 NMS
    hm[0, 1, 0, 4] = 0.7
    cls, idx, score = heatmap_topk(hm, 3)
    assert cls[0, :2].tolist() == [0, 1] and idx[0, :2].tolist() == [2 * 5 + 2, 0 * 5 + 4]
    assert score[0, 2] == 0                          # nothing else is a peak
    cls, idx, score = heatmap_topk(hm, 3, no_nms_classes=(0,))  # small-object class: every cell may start a query
    assert idx[0].tolist() == [12, 13, 4] and torch.allclose(score[0], torch.tensor([0.9, 0.8, 0.7]))


def test_box_code_round_trip():
    boxes = torch.tensor([[3.0, -2.0, -1.0, 4.0, 2.0, 1.5, 2.5, 1.0, -0.5],
                          [-10.0, 7.5, 0.2, 0.6, 0.7, 1.8, -3.0, 0.0, 0.0]])
    code = encode_boxes(boxes, PC_RANGE, (2.0, 2.0))
    assert code[0, :2].tolist() == [(3.0 + 8) / 2, (-2.0 + 8) / 2] and math.isclose(code[0, 2], -1.0 + 0.75)
    pred = dict(center=code[:, :2].T[None], height=code[:, 2:3].T[None], dim=code[:, 3:6].T[None],
                rot=code[:, 6:8].T[None], vel=code[:, 8:].T[None])
    torch.testing.assert_close(decode_boxes(pred, PC_RANGE, (2.0, 2.0))[0], boxes)


def test_hungarian_match_recovers_a_permutation():
    gt = torch.tensor([[0.0, 0, 0, 2, 1, 1, 0], [5.0, 5, 0, 1, 1, 2, 0], [-5.0, 3, 0, 3, 2, 1, 1]])
    labels = torch.tensor([0, 1, 2])
    perm = torch.tensor([2, 0, 3, 1])                # prediction 2 is an extra query far away
    preds = torch.cat([gt, torch.tensor([[7.0, -7, 0, 1, 1, 1, 0]])])[perm]
    logits = torch.full((4, 3), -4.0)
    logits[torch.arange(4), torch.tensor([2, 0, 0, 1])] = 4.0
    r, c = hungarian_match(logits, preds, gt, labels, PC_RANGE)
    assert dict(zip(r.tolist(), c.tolist())) == {0: 2, 1: 0, 3: 1}


def test_deformable_attention_reads_the_query_camera_at_its_reference_point():
    """Offsets 0, identity projections: every sampling point sits on the reference point, so the output is the
    value there — of the query's own camera (camera v's maps are constant v + 1, level 1 adds 10)."""
    from perception3d.models.fusion.layers import MSDeformAttn
    m = MSDeformAttn(8, num_levels=2, num_heads=2, num_points=3)
    with torch.no_grad():
        m.sampling_offsets.bias.zero_()
        for lin in (m.value_proj, m.output_proj):
            lin.weight.copy_(torch.eye(8))
            lin.bias.zero_()
    b, v = 2, 3
    values = [torch.arange(1.0, v + 1).repeat(b).view(b * v, 1, 1, 1).expand(b * v, 8, 6, 10) + 10 * lvl
              for lvl in range(2)]
    view = torch.tensor([[0, 2, 1, 2], [1, 1, 0, 2]])
    ref = torch.tensor([0.5, 0.5]).expand(b, 4, 2)
    out = m(torch.randn(b, 4, 8), ref, values, view)
    want = ((view + 1).float() + (view + 11).float()) / 2          # uniform weights over the two levels
    torch.testing.assert_close(out, want[..., None].expand(b, 4, 8))


def _one_camera_lidar2img() -> torch.Tensor:
    """[1, 1, 4, 4] ``lidar2img`` of the tiny rig's first camera (looking along +x, f = 60, c = (48, 32))."""
    k, l2c = cameras(1)
    k4 = np.eye(4)
    k4[:3, :3] = k[0]
    return torch.tensor(k4 @ l2c[0], dtype=torch.float32)[None, None]


def test_semantic_transfer_samples_the_pixel_a_cell_projects_to():
    """One camera looking along +x (f = 60, c = (48, 32)); the BEV cell centred at (x, y) = (5, -1) at z_ref = 0
    projects to u = 48 + 60 · 1 / 5 = 60, v = 32. A feature map that is 1 exactly around that pixel must give 1
    there; a cell behind the camera sees no camera."""
    l2i = _one_camera_lidar2img()
    st = SemanticTransfer(4, 3, PC_RANGE, (2.0, 2.0))
    feat = torch.zeros(1, 4, 64, 96)
    feat[0, :, 31:33, 59:61] = 1.0                   # the 2×2 pixels around (60, 32)
    img_bev, n = st.image_to_bev(feat, l2i, (64, 96), 8, 8)
    cell = lambda x, y: int((y + 8) // 2) * 8 + int((x + 8) // 2)  # noqa: E731
    torch.testing.assert_close(img_bev[0, :, cell(5, -1)], torch.ones(4))
    assert n[0, 0, cell(5, -1)] == 1 and n[0, 0, cell(-5, -1)] == 0 and img_bev[0, :, cell(-5, -1)].abs().sum() == 0


# --------------------------------------------------------------------------------------------- the detector
def _train_steps(model, inputs, samples, steps: int = 6) -> list:
    """``steps`` AdamW steps (lr 2e-3) on one fixed batch → each step's losses (and their ``total``)."""
    opt = torch.optim.AdamW(model.parameters(), 2e-3)
    hist = []
    for _ in range(steps):
        losses = model(inputs, samples, mode="loss")
        total = sum(losses.values())
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        hist.append({k: v.item() for k, v in losses.items()} | {"total": total.item()})
    return hist


def test_tiny_sparsefusion_learns_on_cpu():
    """A few AdamW steps on one fixed 2-camera batch lower every part of the loss that matters (fusion, LiDAR,
    camera) — the whole graph is wired and differentiable."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg()).train()
    inputs, samples = tiny_batch()
    hist = _train_steps(model, inputs, samples)
    assert hist[-1]["total"] < 0.8 * hist[0]["total"], [h["total"] for h in hist]
    for k in ("loss_fusion_bbox", "loss_lidar_bbox", "loss_img_bbox"):
        assert hist[-1][k] < hist[0][k], k
    model.eval()
    out = model(inputs, [dict(s) for s in samples], mode="predict")
    pred = out[0]["pred_instances_3d"]
    assert pred["bboxes_3d"].shape[1] == 9 and len(pred["scores_3d"]) == len(pred["labels_3d"]) > 0


def test_ablation_switches_and_candidates_as_sparse_tensor():
    inputs, samples = tiny_batch(b=1)
    torch.manual_seed(0)
    for kw, parts in ((dict(use_camera=False), {"lidar"}),
                      (dict(semantic=False, geometric=False), {"lidar", "camera", "view"}),
                      (dict(), {"lidar", "camera", "view"})):
        model = MODELS.build(tiny_cfg(**kw)).eval()
        with torch.no_grad():
            out = model(inputs, samples, mode="tensor")
        assert parts <= set(out) and ("camera" in out) == kw.get("use_camera", True)
        if kw.get("use_camera", True):
            assert (model.head.semantic is not None) == kw.get("semantic", True)
            assert model.head.img_transfer.enabled == kw.get("geometric", True)
    st, pos = model.head.candidates(out, (8, 8))
    assert st.feats.shape == (12 + 12, 32) and st.batch_size == 1 and pos.shape == (24, 2)
    # the geometric transfer needs the projected depth: a clear error without it
    for s in samples:
        s.pop("sparse_depth")
    with pytest.raises(ValueError, match="sparse_depth"):
        model(inputs, samples, mode="tensor")


def test_missing_calibration_is_a_clear_error():
    model = MODELS.build(tiny_cfg()).eval()
    inputs, samples = tiny_batch(b=1)
    samples[0].pop("lidar2cam")
    with pytest.raises(ValueError, match="lidar2cam"):
        model(inputs, samples, mode="tensor")


def test_freeze_lidar_stops_lidar_gradients():
    cfg = tiny_cfg()
    cfg["freeze_lidar"] = True
    model = MODELS.build(cfg).train()
    assert not any(p.requires_grad for p in model.backbone_3d.parameters())
    assert not model.head.lidar.decoder.training and not any(p.requires_grad for p in model.head.lidar.parameters())
    assert all(p.requires_grad for p in model.head.fusion.parameters())


def test_semantic_residual_starts_at_the_lidar_heat_map_and_learns():
    """``residual=True``: at initialisation the transfer's heat map is exactly the LiDAR logits it is given (the
    fusion stage starts from the stage-1 candidates), its correction still receives gradients, and forgetting the
    LiDAR logits is a clear error."""
    l2i = _one_camera_lidar2img()
    torch.manual_seed(0)
    st = SemanticTransfer(4, 3, PC_RANGE, (2.0, 2.0), residual=True)
    bev, feat, base = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 64, 96), torch.randn(1, 3, 8, 8)
    out = st(bev, feat, l2i, (64, 96), base)
    torch.testing.assert_close(out, base)
    out.sum().backward()
    assert st.heatmap_head[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="lidar_logits"):
        st(bev, feat, l2i, (64, 96))
    assert SemanticTransfer(4, 3, PC_RANGE, (2.0, 2.0))(bev, feat, l2i, (64, 96)).shape == base.shape


def test_semantic_residual_corrects_only_the_cells_a_camera_sees():
    """One camera looking along +x: the cells in front of it take the transfer's correction, the cells behind it
    (no camera sees them) keep the LiDAR logits exactly, however large the correction."""
    l2i = _one_camera_lidar2img()
    torch.manual_seed(0)
    st = SemanticTransfer(4, 3, PC_RANGE, (2.0, 2.0), residual=True)
    with torch.no_grad():
        st.heatmap_head[-1].bias.fill_(5.0)
    bev, feat, base = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 64, 96), torch.randn(1, 3, 8, 8)
    out = st(bev, feat, l2i, (64, 96), base)
    _, n = st.image_to_bev(feat, l2i, (64, 96), 8, 8)
    seen = (n[0, 0] > 0).reshape(8, 8)
    assert 0 < int(seen.sum()) < 64
    torch.testing.assert_close(out[0][:, ~seen], base[0][:, ~seen])
    assert ((out - base)[0][:, seen].abs() > 1.0).all()


def test_query_score_decoding_multiplies_each_candidate_by_its_query_peak():
    """``query_score_decoding`` (the authors' ``get_bboxes``): a LiDAR candidate's score is σ(fused logit) times
    the heat-map peak its query started from, on the query's class only; a camera candidate's is σ(logit) ×
    0.5 × its 2D peak where the image decoder's class agrees. Worked from the model's own outputs."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg()).eval()
    inputs, samples = tiny_batch(b=1)
    with torch.no_grad():
        out = model(inputs, samples, mode="tensor")
    lid, cam = out["lidar"], out["camera"]
    # the LiDAR query score: the dense heat map's peak at the query's cell, on its class, 0 elsewhere
    dense = lid["dense_heatmap"].sigmoid().flatten(2)[0]                    # [n_cls, H·W]
    qs = lid["query_score"][0]                                              # [n_cls, K]
    assert ((qs > 0).sum(0) == 1).all() and (qs.argmax(0) == lid["labels"][0]).all()
    peaks = qs.max(0).values
    for lab, pk in zip(lid["labels"][0].tolist(), peaks.tolist()):          # a value of its class's heat map
        assert torch.isclose(dense[lab], torch.tensor(pk)).any()
    assert torch.isclose(peaks.max(), dense.max())                          # the global peak is a query
    cq = cam["query_score"][0]
    agree = cam["pred"]["cls"][0].argmax(0) == cam["labels"][0]
    assert (cq[:, ~agree] == 0).all() and ((cq[:, agree] > 0).sum(0) == 1).all() and (cq <= 0.5).all()
    head = model.head
    assert head.query_score_decoding                                        # the default, as the authors
    dec = head.predict(out)[0]
    head.query_score_decoding = False
    raw = head.predict(out)[0]
    scores = out["final"]["heatmap"][0].sigmoid() * torch.cat([qs, cq], 1)
    top, idx = scores.reshape(-1).topk(min(head.max_det, scores.numel()))
    keep = top > 0
    torch.testing.assert_close(dec["scores_3d"], top[keep])
    torch.testing.assert_close(dec["labels_3d"], (idx // scores.shape[1])[keep])
    assert not torch.equal(dec["scores_3d"], raw["scores_3d"][: len(dec["scores_3d"])])


def _stage2_cfg(**head):
    cfg = tiny_cfg()
    cfg["freeze_lidar"] = True
    cfg["head"].update(head)
    return cfg


def _trained_stage1(noise: float):
    """A tiny TransFusion-L whose parameters differ from a fresh init (seed 0), as a trained stage 1 would."""
    torch.manual_seed(0)
    stage1 = MODELS.build(tiny_cfg(use_camera=False))
    with torch.no_grad():
        for p in stage1.parameters():
            p.add_(noise * torch.randn_like(p))
    return stage1


def test_fusion_stage_from_a_lidar_checkpoint_loads_every_lidar_tensor_and_starts_from_its_heads():
    """The mini two-stage recipe: a TransFusion-L state dict loads into the frozen fusion model with no unexpected
    key and no missing LiDAR key; ``init_fusion_from_lidar`` starts the fusion heads as the LiDAR heads and the
    LiDAR projection as identity; a fusion-stage checkpoint (which has fusion heads) loads as saved."""
    stage1 = _trained_stage1(0.01)
    stage2 = MODELS.build(_stage2_cfg(init_fusion_from_lidar=True, semantic_residual=True))
    res = stage2.load_state_dict(stage1.state_dict(), strict=False)
    assert res.unexpected_keys == []
    assert not [k for k in res.missing_keys if k.startswith(("voxel_encoder", "backbone_", "head.lidar."))]
    assert not [k for k in res.missing_keys if k.startswith(("head.fusion_heads.", "head.proj_lidar.proj."))]
    assert stage2.head.fusion_initialised_from_lidar
    for (n1, a), (n2, b) in zip(stage2.head.lidar.heads.state_dict().items(),
                                stage2.head.fusion_heads.state_dict().items()):
        assert n1 == n2 and torch.equal(a, b), n1
    torch.testing.assert_close(stage2.head.proj_lidar.proj.weight, torch.eye(32))
    for n, t in stage1.state_dict().items():
        assert torch.equal(stage2.state_dict()[n], t), n
    # resuming / evaluating a fusion-stage checkpoint: its own fusion heads, not copies of the LiDAR ones
    with torch.no_grad():
        for p in stage2.head.fusion_heads.parameters():
            p.add_(1.0)
    saved = {k: v.clone() for k, v in stage2.state_dict().items()}
    again = MODELS.build(_stage2_cfg(init_fusion_from_lidar=True, semantic_residual=True))
    assert again.load_state_dict(saved, strict=True)
    assert not again.head.fusion_initialised_from_lidar
    for n, t in saved.items():
        assert torch.equal(again.state_dict()[n], t), n


def test_runner_loads_a_lidar_checkpoint_into_the_frozen_fusion_stage_only(tmp_path):
    """The runner's key check (``load_from``): the fusion stage may lack the camera / fusion tensors of a
    TransFusion-L checkpoint, never a LiDAR tensor (frozen or not); the LiDAR-only model stays strict."""
    from perception3d.engine import check_state_dict_keys
    from perception3d.engine.checkpoint import load_state_dict_strict
    stage1 = MODELS.build(tiny_cfg(use_camera=False)).state_dict()
    stage2 = MODELS.build(_stage2_cfg(init_fusion_from_lidar=True))
    lacking = check_state_dict_keys(stage2, stage1)
    assert set(lacking) == set(stage2.state_dict()) - set(stage1)
    assert lacking and not [k for k in lacking if k.startswith(("backbone_3d.", "head.lidar."))]
    torch.save(dict(state_dict=stage1), tmp_path / "s1.pth")
    load_state_dict_strict(stage2, str(tmp_path / "s1.pth"))
    assert stage2.head.fusion_initialised_from_lidar
    no_head = {k: v for k, v in stage1.items() if not k.startswith("head.lidar.heads.center.")}
    with pytest.raises(KeyError, match="head.lidar.heads.center"):
        check_state_dict_keys(stage2, no_head)
    assert set(check_state_dict_keys(MODELS.build(tiny_cfg()), stage1)) == set(lacking)     # not frozen
    with pytest.raises(KeyError, match="unexpected keys"):
        check_state_dict_keys(MODELS.build(tiny_cfg(use_camera=False)), stage2.state_dict())


def test_frozen_lidar_parameters_and_statistics_do_not_change_in_training():
    """``freeze_lidar``: AdamW steps with weight decay change the camera and fusion parts but no LiDAR parameter
    or BatchNorm statistic."""
    torch.manual_seed(0)
    model = MODELS.build(_stage2_cfg(init_fusion_from_lidar=True, semantic_residual=True)).train()
    lidar = {n: t.clone() for n, t in model.state_dict().items()
             if n.startswith(("voxel_encoder", "backbone_", "map_to_bev", "head.lidar."))}
    others = {n: t.clone() for n, t in model.state_dict().items() if n.startswith("head.fusion_heads.")}
    opt = torch.optim.AdamW([p for p in model.parameters()], 1e-2, weight_decay=0.01)
    inputs, samples = tiny_batch()
    for _ in range(2):
        loss = sum(model(inputs, samples, mode="loss").values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert lidar and all(torch.equal(model.state_dict()[n], t) for n, t in lidar.items())
    assert any(not torch.equal(model.state_dict()[n], t) for n, t in others.items())


def test_residual_fusion_stage_starts_with_the_lidar_predictions_and_then_learns():
    """``fusion_residual``: loaded from a trained TransFusion-L, the fused output's LiDAR candidates (the first K)
    are the frozen LiDAR model's predictions exactly, its camera candidates the view transformer's; a training
    step moves the fused prediction away from them; with ``init_fusion_from_lidar`` as well it is an error."""
    stage1 = _trained_stage1(0.05)
    model = MODELS.build(_stage2_cfg(fusion_residual=True, semantic_residual=True))
    model.load_state_dict(stage1.state_dict(), strict=False)
    inputs, samples = tiny_batch()
    model.eval()
    stage1.eval()
    with torch.no_grad():
        out = model(inputs, samples, mode="tensor")
        ref = stage1(inputs, samples, mode="tensor")["final"]
    k = ref["heatmap"].shape[2]
    for name, t in out["final"].items():
        torch.testing.assert_close(t[:, :, :k], ref[name], msg=name)
        torch.testing.assert_close(t[:, :, k:], out["view"]["pred"][name], msg=name)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-2)
    loss = sum(model(inputs, samples, mode="loss").values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        moved = model(inputs, samples, mode="tensor")["final"]["heatmap"][:, :, :k]
    assert (moved - ref["heatmap"]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="alternatives"):
        MODELS.build(_stage2_cfg(fusion_residual=True, init_fusion_from_lidar=True))


def _camera_stage_cfg():
    cfg = tiny_cfg(semantic=False)
    cfg["head"]["camera_only"] = True
    return cfg


def test_camera_pretraining_stage_runs_no_lidar_network_and_learns(monkeypatch):
    """``camera_only``: no LiDAR module runs (``extract_bev`` would raise) or gets a gradient; only the camera
    branch's and the view transformer's losses; AdamW steps lower them; every prediction is a camera candidate."""
    from perception3d.models.fusion.sparsefusion import SparseFusion
    torch.manual_seed(0)
    model = MODELS.build(_camera_stage_cfg()).train()
    monkeypatch.setattr(SparseFusion, "extract_bev", lambda *a: (_ for _ in ()).throw(AssertionError("LiDAR ran")))
    inputs, samples = tiny_batch()
    hist = _train_steps(model, inputs, samples)
    assert set(hist[0]) == {"loss_view_cls", "loss_view_bbox", "loss_img_cls", "loss_img_bbox", "loss_img_heatmap",
                            "total"}
    assert hist[-1]["total"] < 0.8 * hist[0]["total"] and hist[-1]["loss_view_bbox"] < hist[0]["loss_view_bbox"]
    lidar = [model.voxel_encoder, model.backbone_3d, model.head.lidar]
    assert all(p.grad is None for m in lidar for p in m.parameters())
    model.eval()
    pred = model(inputs, [dict(s) for s in samples], mode="predict")[0]["pred_instances_3d"]
    assert len(pred["scores_3d"]) > 0 and pred["from_camera"].all()
    with pytest.raises(ValueError, match="use_camera"):
        MODELS.build(dict(_camera_stage_cfg(), head=dict(_camera_stage_cfg()["head"], use_camera=False)))
    with pytest.raises(ValueError, match="voxel_size"):
        MODELS.build(dict(_camera_stage_cfg(), head=dict(_camera_stage_cfg()["head"], voxel_size=None)))


def test_image_heatmap_weight_scales_the_2d_heat_map_loss_alone():
    """``img_heatmap_weight`` (the authors' 0.1 by default) multiplies the camera branch's 2D heat-map loss and no
    other loss: the same weights and batch give 10× that loss at 1.0 and every other loss unchanged."""
    torch.manual_seed(0)
    ref = MODELS.build(_camera_stage_cfg()).eval()
    cfg = _camera_stage_cfg()
    cfg["head"]["img_heatmap_weight"] = 1.0
    heavy = MODELS.build(cfg).eval()
    heavy.load_state_dict(ref.state_dict())
    inputs, samples = tiny_batch()
    with torch.no_grad():
        a = ref(inputs, [dict(s) for s in samples], mode="loss")
        b = heavy(inputs, [dict(s) for s in samples], mode="loss")
    assert ref.head.img_heatmap_weight == 0.1 and a["loss_img_heatmap"] > 0
    torch.testing.assert_close(b["loss_img_heatmap"], 10 * a["loss_img_heatmap"])
    for k in set(a) - {"loss_img_heatmap"}:
        torch.testing.assert_close(b[k], a[k])


def test_fusion_stage_starts_from_the_lidar_and_the_camera_checkpoints(tmp_path):
    """``camera_checkpoint`` + ``load_from``, in the runner's order (``init_weights``, then the LiDAR checkpoint
    with its key check): the camera side equals the camera stage's, the LiDAR side stage 1's, the fusion layer is
    new; LiDAR candidates are ranked before camera ones in ``from_camera``; a checkpoint without a camera side is a
    ``ValueError`` naming the file."""
    from perception3d.engine.checkpoint import load_state_dict_strict
    from perception3d.models.fusion.sparsefusion import CAMERA_PREFIXES
    # stage 1 as the mini config builds it: TransFusion-L without an image backbone
    stage1 = {k: v for k, v in _trained_stage1(0.01).state_dict().items() if not k.startswith(CAMERA_PREFIXES)}
    torch.save(dict(state_dict=stage1), tmp_path / "lidar.pth")
    torch.manual_seed(1)
    camera = MODELS.build(_camera_stage_cfg())
    with torch.no_grad():
        for p in camera.parameters():
            p.add_(0.01)
    torch.save(dict(state_dict=camera.state_dict()), tmp_path / "camera.pth")
    cfg = _stage2_cfg(fusion_residual=True, semantic_residual=True)
    cfg["camera_checkpoint"] = str(tmp_path / "camera.pth")
    model = MODELS.build(cfg)
    model.init_weights()
    load_state_dict_strict(model, str(tmp_path / "lidar.pth"))
    sd, cam_sd = model.state_dict(), camera.state_dict()
    cam_keys = [k for k in sd if k.startswith(CAMERA_PREFIXES)]
    assert cam_keys and all(torch.equal(sd[k], cam_sd[k]) for k in cam_keys)
    assert all(torch.equal(sd[k], v) for k, v in stage1.items())
    assert not torch.equal(sd["head.fusion_heads.center.0.weight"], cam_sd["head.fusion_heads.center.0.weight"])
    inputs, samples = tiny_batch(b=1)
    pred = model.eval()(inputs, samples, mode="predict")[0]["pred_instances_3d"]
    with torch.no_grad():
        out = model(inputs, samples, mode="tensor")
    # [n, 12 LiDAR + 12 camera]: σ(logit) × each query's heat-map peak (query_score_decoding)
    scores = out["final"]["heatmap"].sigmoid()[0] * torch.cat([out["lidar"]["query_score"],
                                                              out["camera"]["query_score"]], 2)[0]
    assert int(pred["from_camera"].sum()) == int((scores.reshape(-1).topk(len(pred["scores_3d"]))[1]
                                                  % scores.shape[1] >= 12).sum())
    bad = MODELS.build(cfg)
    bad.camera_checkpoint = str(tmp_path / "lidar.pth")
    with pytest.raises(ValueError, match="lidar.pth.*camera tensors missing"):
        bad.init_weights()


def test_view_loss_matches_only_boxes_a_camera_sees():
    """A box behind both cameras changes the LiDAR and fusion losses but not the view transformer's: camera
    candidates are matched to the boxes whose centre projects into an image (``camera_visible``)."""
    from perception3d.models.fusion.sparsefusion import camera_visible
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg()).eval()
    inputs, samples = tiny_batch(b=1)
    behind = [dict(s, gt_bboxes_3d=torch.cat([s["gt_bboxes_3d"], torch.tensor([[-5.0, -3.0, -1.0, 2.0, 1.0, 1.5,
                                                                                0.0, 0.0, 0.0]])]),
                   gt_labels_3d=torch.tensor([0, 1, 0])) for s in samples]
    calib = dict(cam2img=torch.as_tensor(samples[0]["cam2img"]).float()[None],
                 lidar2cam=torch.as_tensor(samples[0]["lidar2cam"]).float()[None], img_size=(64, 96))
    assert camera_visible([behind[0]["gt_bboxes_3d"]], calib)[0].tolist() == [True, True, False]
    with torch.no_grad():
        a = model(inputs, samples, mode="loss")
        b = model(inputs, behind, mode="loss")
    for k in ("loss_view_cls", "loss_view_bbox"):
        torch.testing.assert_close(a[k], b[k], msg=k)
    assert not torch.allclose(a["loss_lidar_cls"], b["loss_lidar_cls"])


# --------------------------------------------------------------------------------------------- nuScenes config
#: the authors' nuScenes model (yichen928/SparseFusion, sparsefusion_nusc_voxel_LC_r50.py), counted from its module
#: definitions: head parts of SparseFusionHead2D_Deform, ResNet-50 + FPN, SparseEncoder + SECOND + SECONDFPN
AUTHORS = dict(lidar=7_271_120, image=26_852_416, head=5_949_228, total=40_072_764,
               lidar_detector=589_952 + 159_242 + 1_408 + 284_308,    # shared_conv, heatmap, class enc., decoder+FFN
               depth_resnet=3_004_672, camera=637_480 + 1_408 + 512 + 320_788,  # heat maps, enc., level pos, decoder
               view_transformer=271_540, fusion=234_644, semantic=443_274)


def test_mini_two_stage_configs_load_stage_one_and_share_the_stage_two_schedule():
    """configs/*_waymo_mini*.py: both stage-2 configs load the checkpoint stage 1 writes last (its epochs × the
    mini set's 160 training frames / batch), train the same schedule and seed, and only the fusion one freezes
    the LiDAR side; stage 1 trains the schedule of the joint fusion config."""
    import inspect

    from perception3d.cli import load_config
    from perception3d.datasets.synthetic.writer import generate_waymo_mini
    cfg = {n: load_config(str(ROOT / "configs" / f"{n}.py")) for n in (
        "transfusion_l_waymo_mini", "sparsefusion_waymo_mini", "sparsefusion_waymo_mini_stage2",
        "transfusion_l_waymo_mini_stage2")}
    s1, joint, sf2, tl2 = cfg.values()
    frames = inspect.signature(generate_waymo_mini).parameters["num_train"].default
    last = s1.train_cfg.max_epochs * (frames // s1.train_dataloader.batch_size)
    cam = load_config(str(ROOT / "configs" / "sparsefusion_waymo_mini_camera.py"))
    decay = load_config(str(ROOT / "configs" / "transfusion_l_waymo_mini_stage2_decay.py"))
    for c in (sf2, tl2, decay):
        assert Path(c.load_from).name == f"iter_{last}.pth" and Path(c.load_from).parent.name == \
            "transfusion_l_waymo_mini"
        assert c.train_cfg == sf2.train_cfg
        assert c.get("randomness", {}) == s1.get("randomness", {})
    assert tl2.param_scheduler == sf2.param_scheduler
    assert s1.param_scheduler == joint.param_scheduler and s1.train_cfg == joint.train_cfg
    assert sf2.model.freeze_lidar and not tl2.model.get("freeze_lidar", False)
    assert sf2.model.head.fusion_residual and not sf2.model.head.get("init_fusion_from_lidar", False)
    # the fusion stage loads the camera stage's last checkpoint; the camera stage runs no LiDAR network
    cam_last = cam.train_cfg.max_epochs * (frames // cam.train_dataloader.batch_size)
    assert Path(sf2.model.camera_checkpoint).name == f"iter_{cam_last}.pth" and \
        Path(sf2.model.camera_checkpoint).parent.name == "sparsefusion_waymo_mini_camera"
    assert cam.model.head.camera_only and not cam.model.head.semantic_transfer and not cam.get("load_from")
    # the no-warm-up control: starts at the fusion stage's first lr and ends at its last, decaying only
    one = sf2.param_scheduler[0]
    first, final = one.eta_max / one.div_factor, one.eta_max / one.div_factor / one.final_div_factor
    (cos,) = decay.param_scheduler
    assert cos.type == "CosineAnnealingLR" and decay.optim_wrapper.optimizer.lr == pytest.approx(first)
    assert cos.eta_min == pytest.approx(final)


def _lr_trace(cfg, steps_per_epoch=80):
    """Every parameter's learning rate at each iteration of ``cfg``'s schedule: {name: [lr_0, lr_1, ...]}."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from perception3d.registry import PARAM_SCHEDULERS
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
        opt = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    scheds = []
    for spec in cfg.param_scheduler:
        spec = dict(spec, optimizer=opt, epoch_length=steps_per_epoch)
        spec.pop("convert_to_iter_based")
        scheds.append(PARAM_SCHEDULERS.get(spec.pop("type")).build_iter_from_epoch(**spec))
    group = {id(p): i for i, g in enumerate(opt.param_groups) for p in g["params"]}
    names = {n: group[id(p)] for n, p in model.named_parameters()}
    trace = []
    for _ in range(cfg.train_cfg.max_epochs * steps_per_epoch):
        trace.append([g["lr"] for g in opt.param_groups])
        for s in scheds:
            s.step()
    return model, {n: [t[i] for t in trace] for n, i in names.items()}


@pytest.mark.filterwarnings("ignore:Detected call of `scheduler.step()`")
def test_joint_fusion_stage_trains_the_lidar_side_on_the_controls_learning_rates():
    """configs/sparsefusion_waymo_mini_stage2_joint.py: nothing frozen; every LiDAR-backbone and LiDAR-detector
    parameter gets, iteration by iteration, the learning rate the same parameter gets in the LiDAR-only control
    (transfusion_l_waymo_mini_stage2_decay.py); the new parts run 10 × higher on the same cosine."""
    from perception3d.cli import load_config
    joint = load_config(str(ROOT / "configs" / "sparsefusion_waymo_mini_stage2_joint.py"))
    decay = load_config(str(ROOT / "configs" / "transfusion_l_waymo_mini_stage2_decay.py"))
    assert joint.train_cfg == decay.train_cfg and joint.load_from == decay.load_from
    model, lr_joint = _lr_trace(joint)
    _, lr_ctrl = _lr_trace(decay)
    assert all(p.requires_grad for p in model.parameters()) and not model.freeze_lidar
    lidar = {n for n in lr_joint if n.startswith(("voxel_encoder.", "backbone_3d.", "backbone_2d.", "head.lidar."))}
    assert lidar and lidar <= set(lr_ctrl)
    for n in lidar:
        assert lr_joint[n] == pytest.approx(lr_ctrl[n], rel=1e-9), n
    ctrl = lr_ctrl["head.lidar.shared_conv.weight"]
    assert ctrl[0] == pytest.approx(2e-4) and ctrl[-1] < 1e-6 and all(a >= b for a, b in zip(ctrl, ctrl[1:]))
    for n in ("head.fusion_heads.heatmap.0.weight", "head.semantic.heatmap_head.0.weight",
              "head.camera.class_encoding.weight"):
        assert lr_joint[n] == pytest.approx([10 * v for v in ctrl], rel=1e-9), n


def test_fusion_stage_from_the_control_is_the_frozen_stage_started_from_the_controls_last_checkpoint():
    """configs/sparsefusion_waymo_mini_stage2_from_control.py = sparsefusion_waymo_mini_stage2.py (LiDAR frozen, same
    schedule, same camera checkpoint) except ``load_from``: the checkpoint the no-warm-up control writes last."""
    from perception3d.cli import load_config
    ctrl = load_config(str(ROOT / "configs" / "sparsefusion_waymo_mini_stage2_from_control.py"))
    sf2 = load_config(str(ROOT / "configs" / "sparsefusion_waymo_mini_stage2.py"))
    decay = load_config(str(ROOT / "configs" / "transfusion_l_waymo_mini_stage2_decay.py"))
    import inspect

    from perception3d.datasets.synthetic.writer import generate_waymo_mini
    frames = inspect.signature(generate_waymo_mini).parameters["num_train"].default
    last = decay.train_cfg.max_epochs * (frames // decay.train_dataloader.batch_size)
    assert Path(ctrl.load_from).name == f"iter_{last}.pth"
    assert Path(ctrl.load_from).parent.name == "transfusion_l_waymo_mini_stage2_decay"  # the control's work_dir
    assert ctrl.model.freeze_lidar and ctrl.model == sf2.model
    for key in ("param_scheduler", "train_cfg", "optim_wrapper", "train_dataloader"):
        assert ctrl[key] == sf2[key], key


def test_nuscenes_config_parameter_count():
    """Our build of configs/sparsefusion_nus.py against the authors' model, part by part: LiDAR backbone,
    ResNet-50 + FPN, the LiDAR detector (TransFusion-L head), the geometric transfer's depth encoder and the camera
    branch (deformable decoder included) are equal exactly; the view transformer and the fusion layer lack one
    unused LayerNorm each (256); the semantic transfer samples the image at the projected cell instead of a
    deformable decoder (+29,056). Total 40,101,308 vs 40,072,764 (+0.07 %)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(str(ROOT / "configs" / "sparsefusion_nus.py"))
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    head = model.head
    assert _n(model.voxel_encoder) + _n(model.backbone_3d) + _n(model.backbone_2d) == AUTHORS["lidar"]
    assert _n(model.img_backbone) + _n(model.img_neck) == AUTHORS["image"]
    assert _n(head.lidar) == AUTHORS["lidar_detector"]
    assert _n(head.img_transfer) == AUTHORS["depth_resnet"]
    assert _n(head.camera) == AUTHORS["camera"]
    assert _n(head.view_transformer) == AUTHORS["view_transformer"] - 256
    assert _n(head.proj_lidar) + _n(head.proj_img) + _n(head.fusion) + _n(head.fusion_heads) == AUTHORS["fusion"] - 256
    assert _n(head.semantic) == AUTHORS["semantic"] + 29_056
    assert _n(head) == 5_977_772 == AUTHORS["head"] + 28_544
    assert _n(model) == 40_101_308 == AUTHORS["total"] + 28_544
    assert cfg.model.head.num_queries == cfg.model.head.num_img_queries == 200
    assert cfg.voxel_size == [0.075, 0.075, 0.2] and cfg.img_size == (448, 800) and cfg.max_epochs == 6
    assert cfg.optim_wrapper.optimizer.type == "AdamW" and cfg.optim_wrapper.optimizer.lr == 1e-4


# --------------------------------------------------------------------------------------------- real nuScenes sample
def _demo_frame():
    from perception3d.datasets.nuscenes import load_nuscenes_frame, load_nuscenes_infos
    pkl = DEMO / "n015-2018-07-24-11-22-45+0800.pkl"
    if not pkl.is_file():
        pytest.skip(f"real nuScenes sample not found at {DEMO} (../shared/data is absent in a fresh clone)")
    return load_nuscenes_infos(pkl)[1][0], load_nuscenes_frame(load_nuscenes_infos(pkl)[1][0], DEMO, min_points=0)


def test_real_sample_image_targets_match_the_info():
    """The camera branch's targets on the real sample: one per (camera, box) whose centre is in the image — the
    info's 84 cam_instances less the 5 whose centre is cut off by the border (see test_nuscenes.py)."""
    entry, fr = _demo_frame()
    t, c2d, view, box = camera_targets(torch.as_tensor(np.nan_to_num(fr["gt_bboxes_3d"]), dtype=torch.float32),
                                       torch.as_tensor(fr["cam2img"]), torch.as_tensor(fr["lidar2cam"]), (900, 1600))
    assert len(view) == 79
    for cam_i, cam in enumerate(fr["cam_names"]):
        got = c2d[cam_i, box[view == cam_i]] * torch.tensor([1600.0, 900.0])
        want = torch.tensor([i["center_2d"] for i in entry["cam_instances"][cam]]).reshape(-1, 2)
        for g in got:  # every target is one of the info's visible instances, at its 2D centre
            assert (want - g).norm(dim=1).min() < 0.05


def test_real_sample_through_the_model():
    """The real frame (6 cameras) through the config's test pipeline steps and a narrow model with the nuScenes
    geometry: loss finite, predictions in the LiDAR range."""
    from perception3d.datasets.transforms_multimodal import ImageResizeCropFlip, SparseDepthMap
    _, fr = _demo_frame()
    fr = ImageResizeCropFlip(final_dim=(96, 160), resize_lim=(0.1, 0.1), test_mode=True)(fr)
    fr = SparseDepthMap(stride=4)(fr)
    cfg = tiny_cfg()
    pcr = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
    cfg["voxel_encoder"].update(voxel_size=[1.2, 1.2, 0.2], point_cloud_range=pcr, num_point_features=4)
    cfg["head"].update(pc_range=pcr, voxel_size=[1.2, 1.2], num_classes=10)
    model = MODELS.build(cfg).eval()
    pts = torch.as_tensor(fr["points"][:, :4])
    keep = (pts[:, :3] > torch.tensor(pcr[:3])).all(1) & (pts[:, :3] < torch.tensor(pcr[3:])).all(1)
    sample = dict(gt_bboxes_3d=torch.as_tensor(fr["gt_bboxes_3d"]), gt_labels_3d=torch.as_tensor(fr["gt_labels_3d"]),
                  cam2img=fr["cam2img"], lidar2cam=fr["lidar2cam"], sparse_depth=fr["sparse_depth"],
                  images=[im for im in fr["images"]])
    with torch.no_grad():
        losses = model(dict(points=[pts[keep]]), [sample], mode="loss")
        assert all(torch.isfinite(v) for v in losses.values())
        res = model(dict(points=[pts[keep]]), [dict(sample)], mode="predict")[0]["pred_instances_3d"]
    assert res["bboxes_3d"].shape[1] == 9 and (res["bboxes_3d"][:, :2].abs() < 60).all()


def test_real_sample_through_the_config_pipeline_and_collate():
    """configs/sparsefusion_nus.py's test pipeline on the real sample via NuScenesDataset, mmengine's
    pseudo_collate and the model's data preprocessor (images un-collated per sample), then a narrow model."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from perception3d.registry import DATASETS
    pkl = DEMO / "n015-2018-07-24-11-22-45+0800.pkl"
    if not pkl.is_file():
        pytest.skip(f"real nuScenes sample not found at {DEMO} (../shared/data is absent in a fresh clone)")
    cfg = Config.fromfile(str(ROOT / "configs" / "sparsefusion_nus.py"))
    pipeline = [dict(t) for t in cfg.test_pipeline]
    pipeline[0].update(final_dim=(96, 160), resize_lim=(0.1, 0.1))   # small images for a CPU test
    ds = DATASETS.build(dict(type="NuScenesDataset", data_root=str(DEMO), ann_file=str(pkl), sweeps_num=1,
                             pipeline=pipeline, test_mode=True))
    batch = pseudo_collate([ds[0], ds[0]])
    tiny = tiny_cfg()
    pcr = cfg.point_cloud_range
    tiny["voxel_encoder"].update(voxel_size=[1.2, 1.2, 0.2], point_cloud_range=pcr, num_point_features=4)
    tiny["head"].update(pc_range=pcr, voxel_size=[1.2, 1.2], num_classes=10)
    model = MODELS.build(tiny).eval()
    data = model.data_preprocessor(batch)
    imgs = [s["images"] for s in data["data_samples"]]
    assert len(imgs) == 2 and all(tuple(im.shape) == (6, 96, 160, 3) for im in imgs)
    data["inputs"]["points"] = [p[:, :4] for p in data["inputs"]["points"]]
    with torch.no_grad():
        out = model(**data, mode="tensor")
    assert out["camera"]["feat"].shape == (2, 32, 12) and int(out["camera"]["view"].max()) <= 5


def test_sample_without_cameras_runs_lidar_only_with_a_counted_warning():
    model = MODELS.build(tiny_cfg()).eval()
    inputs, samples = tiny_batch(b=2)
    for s, im in zip(samples, inputs.pop("imgs")):
        s["images"] = im.permute(0, 2, 3, 1)            # the readers' layout, as packed into the data samples
    with torch.no_grad():
        assert "camera" in model(inputs, samples, mode="tensor")
        samples[1]["images"] = []                      # a sample whose cameras were skipped by the reader
        with pytest.warns(UserWarning, match="1 of 2 samples have no camera images"):
            out = model(inputs, samples, mode="predict")
    assert model.num_lidar_only_batches == 1 and out[1]["pred_instances_3d"]["bboxes_3d"].shape[1] == 9


def test_lidar_stage_checkpoint_loads_into_the_fusion_stage():
    """The authors' two-stage recipe: configs/sparsefusion_nus_lidar.py (TransFusion-L, 8,306,030 parameters =
    LiDAR backbone + LiDAR detector) trains first; every one of its tensors loads into configs/sparsefusion_nus.py,
    whose LiDAR part then stays frozen."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope("perception3d"):
        stage1 = MODELS.build(Config.fromfile(str(ROOT / "configs" / "sparsefusion_nus_lidar.py")).model)
        stage2 = MODELS.build(Config.fromfile(str(ROOT / "configs" / "sparsefusion_nus.py")).model)
    assert _n(stage1) == AUTHORS["lidar"] + AUTHORS["lidar_detector"] == 8_306_030
    res = stage2.load_state_dict(stage1.state_dict(), strict=False)
    assert res.unexpected_keys == []
    assert res.missing_keys and all(not k.startswith(("backbone_3d", "backbone_2d", "head.lidar"))
                                    for k in res.missing_keys)
    frozen = {n for n, p in stage2.named_parameters() if not p.requires_grad}
    assert {n for n, _ in stage1.named_parameters()} <= frozen


def test_dsvt_lidar_backbone_under_the_fusion_head():
    """Any of our LiDAR backbones feeds the fusion head: pillars → DSVT → BEV ResNet, one training step, the
    gradient reaches the DSVT blocks."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(backbone="dsvt")).train()
    inputs, samples = tiny_batch()
    losses = model(inputs, samples, mode="loss")
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    grads = [p.grad for p in model.backbone_3d.parameters()]
    assert grads and all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_sparse_lidar_configs_are_the_dense_recipe_on_the_256_column_data_chained_by_work_dir():
    """configs/*_sparse_lidar*.py: each stage is its dense counterpart (model, schedule, seed) on the data generated
    with ``lidar_width=256`` (train, val and test), each loads the last checkpoint of the previous stage's own
    work_dir, and only the camera stage changes the model (2D heat-map weight 1.0)."""
    from perception3d.cli import load_config
    pairs = {"transfusion_l_waymo_mini_sparse_lidar": "transfusion_l_waymo_mini",
             "transfusion_l_waymo_mini_sparse_lidar_stage2_decay": "transfusion_l_waymo_mini_stage2_decay",
             "sparsefusion_waymo_mini_sparse_lidar_camera": "sparsefusion_waymo_mini_camera",
             "sparsefusion_waymo_mini_sparse_lidar_stage2": "sparsefusion_waymo_mini_stage2_from_control"}
    import inspect

    from perception3d.datasets.synthetic.writer import generate_waymo_mini
    cfg = {n: (load_config(str(ROOT / "configs" / f"{n}.py")), load_config(str(ROOT / "configs" / f"{d}.py")))
           for n, d in pairs.items()}
    camera_ckpt = {}
    for name, (sparse, dense) in cfg.items():
        assert sparse.prepare_data.generator == dict(lidar_width=256), name
        assert Path(sparse.prepare_data.root).name == "waymo_mini_surround_w256"
        for dl in (sparse.train_dataloader.dataset.dataset, sparse.val_dataloader.dataset,
                   sparse.test_dataloader.dataset):
            assert Path(dl.data_root).parent.name == "waymo_mini_surround_w256", name
        for key in ("param_scheduler", "train_cfg", "optim_wrapper"):
            assert sparse[key] == dense[key], (name, key)
        assert sparse.get("randomness") == dense.get("randomness"), name
        if name.endswith("_camera"):
            assert sparse.model.head.pop("img_heatmap_weight") == 1.0
        else:
            assert "img_heatmap_weight" not in sparse.model.head
        camera_ckpt[name] = sparse.model.pop("camera_checkpoint", None)
        dense.model.pop("camera_checkpoint", None)
        assert sparse.model == dense.model, name
    frames = inspect.signature(generate_waymo_mini).parameters["num_train"].default
    steps = lambda c: c.train_cfg.max_epochs * (frames // c.train_dataloader.batch_size)  # noqa: E731
    (s1, _), (ctrl, _), (cam, _), (sf, _) = cfg.values()
    assert not s1.get("load_from") and not cam.get("load_from")
    assert Path(ctrl.load_from).parent.name == "transfusion_l_waymo_mini_sparse_lidar"
    assert Path(ctrl.load_from).name == f"iter_{steps(s1)}.pth"
    assert Path(sf.load_from).parent.name == "transfusion_l_waymo_mini_sparse_lidar_stage2_decay"
    assert Path(sf.load_from).name == f"iter_{steps(ctrl)}.pth"
    sf_cam = Path(camera_ckpt["sparsefusion_waymo_mini_sparse_lidar_stage2"])
    assert sf_cam.parent.name == "sparsefusion_waymo_mini_sparse_lidar_camera"
    assert sf_cam.name == f"iter_{steps(cam)}.pth"


def test_sparse_lidar_640_configs_change_only_the_frames_and_the_epochs():
    """configs/*_sparse_lidar_640*.py: the 160-frame sparse-LiDAR stages on the data generated with 640 training
    frames (the same generator arguments otherwise), with the epochs cut so that each stage runs one pass (control,
    fusion: 320 iterations) or three (camera: 960); the model, optimizer and seed unchanged, chained by work_dir,
    the control starting from the 160-frame stage 1."""
    from perception3d.cli import load_config
    stages = ("transfusion_l_waymo_mini_sparse_lidar_{}stage2_decay", "sparsefusion_waymo_mini_sparse_lidar_{}camera",
              "sparsefusion_waymo_mini_sparse_lidar_{}stage2")
    pairs = {s.format("640_"): s.format("") for s in stages}
    cfg = {n: (load_config(str(ROOT / "configs" / f"{n}.py")), load_config(str(ROOT / "configs" / f"{d}.py")))
           for n, d in pairs.items()}
    iters, camera_ckpt = {}, {}
    for name, (big, small) in cfg.items():
        assert big.prepare_data.generator == dict(small.prepare_data.generator, num_train=640), name
        assert Path(big.prepare_data.root).name == "waymo_mini_surround_w256_640"
        for dl in (big.train_dataloader.dataset.dataset, big.val_dataloader.dataset, big.test_dataloader.dataset):
            assert Path(dl.data_root).parent.name == "waymo_mini_surround_w256_640", name
        for key in ("optim_wrapper", "randomness"):
            assert big.get(key) == small.get(key), (name, key)
        for sched_big, sched_small in zip(big.param_scheduler, small.param_scheduler):
            assert sched_big["end"] == big.train_cfg.max_epochs
            assert dict(sched_big, end=None) == dict(sched_small, end=None), name
        camera_ckpt[name] = big.model.pop("camera_checkpoint", None)
        small.model.pop("camera_checkpoint", None)
        assert big.model == small.model, name
        iters[name] = big.train_cfg.max_epochs * 640 // big.train_dataloader.batch_size
    assert list(iters.values()) == [320, 960, 320]
    (ctrl, small_ctrl), (cam, _), (sf, _) = cfg.values()
    assert ctrl.load_from == small_ctrl.load_from   # stage 1: the 160-frame one
    assert not cam.get("load_from")
    sf_cam = camera_ckpt[stages[2].format("640_")]
    assert Path(sf.load_from).parent.name == "transfusion_l_waymo_mini_sparse_lidar_640_stage2_decay"
    assert Path(sf.load_from).name == "iter_320.pth"
    assert Path(sf_cam).parent.name == "sparsefusion_waymo_mini_sparse_lidar_640_camera"
    assert Path(sf_cam).name == "iter_960.pth"
