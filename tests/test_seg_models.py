"""Segmentation losses (Lovász-softmax, CE), point-level mIoU with per-class IoU and confusion PNG, voxel → point
projection, test-time augmentation and the MinkUNet segmentor."""
import itertools

import numpy as np
import pytest
import torch

import perception3d.models  # noqa: F401
from perception3d.evaluation.cls_seg import SegMIoUMetric
from perception3d.models.heads.seg_head import lovasz_grad, lovasz_softmax, seg_losses
from perception3d.registry import MODELS


def _jaccard_loss(fg: np.ndarray, chosen: np.ndarray) -> float:
    """1 − |fg ∩ chosen| / |fg ∪ chosen| (0 when both are empty)."""
    union = (fg | chosen).sum()
    return 0.0 if union == 0 else 1.0 - (fg & chosen).sum() / union


def test_lovasz_grad_is_the_jaccard_increment_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        fg = rng.random(9) < 0.4
        g = lovasz_grad(torch.tensor(fg, dtype=torch.float64)).numpy()
        # the i-th increment: Jaccard loss of predicting the first i+1 points (in sorted order) as wrong
        ref = []
        prev = 0.0
        for i in range(len(fg)):
            wrong = np.zeros(len(fg), bool)
            wrong[:i + 1] = True
            # predicted positive set: foreground points not wrong + background points wrong
            chosen = (fg & ~wrong) | (~fg & wrong)
            cur = _jaccard_loss(fg, chosen)
            ref.append(cur - prev)
            prev = cur
        assert np.allclose(g, ref)


def test_lovasz_softmax_on_one_hot_equals_one_minus_iou():
    gt = torch.tensor([0, 0, 1, 1, 2, 2, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 2, 0, 2, 1])
    probs = torch.nn.functional.one_hot(pred, 3).double()
    keep = gt >= 0
    ious = []
    for c in range(3):
        g, p = (gt[keep] == c), (pred[keep] == c)
        ious.append(float((g & p).sum()) / float((g | p).sum()))
    assert abs(float(lovasz_softmax(probs, gt, ignore_index=-1)) - (1 - np.mean(ious))) < 1e-12
    # differentiable, and zero when only ignored labels are left
    logits = torch.randn(8, 3, requires_grad=True)
    loss = lovasz_softmax(logits.softmax(1), gt)
    loss.backward()
    assert logits.grad.abs().sum() > 0
    assert float(lovasz_softmax(probs, torch.full((8,), -1))) == 0.0


def test_seg_losses_keys_weights_and_bad_keys():
    logits, y = torch.randn(20, 4), torch.randint(-1, 4, (20,))
    out = seg_losses(logits, y, dict(ce=2.0, lovasz=0.5))
    ce = torch.nn.functional.cross_entropy(logits, y, ignore_index=-1)
    assert torch.allclose(out["loss_ce"], 2 * ce) and set(out) == {"loss_ce", "loss_lovasz"}
    with pytest.raises(ValueError, match="unknown loss.*focal"):
        seg_losses(logits, y, dict(focal=1.0))


def test_metric_per_class_iou_and_confusion_png(tmp_path):
    gt = torch.tensor([0, 0, 1, 1, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    m = SegMIoUMetric(num_classes=4, ignore_index=-1, class_names=["a", "b", "c", "d"],
                      confusion_png=str(tmp_path / "cm.png"))
    m.process(None, [dict(pred_segment=pred, gt_segment=gt)])
    res = m.evaluate(1)
    # a: 1/(1+1+1), b: 2/3, c: 0/1, d never occurs (left out of the mean)
    assert abs(res["seg/IoU.a"] - 100 / 3) < 1e-9 and abs(res["seg/IoU.b"] - 200 / 3) < 1e-9
    assert res["seg/IoU.c"] == 0.0 and "seg/IoU.d" not in res and abs(res["seg/mIoU"] - 100 / 3) < 1e-9
    png = (tmp_path / "cm.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert np.load(tmp_path / "cm.npy").tolist()[1] == [0, 2, 0, 0]
    with pytest.raises(ValueError, match="3 class_names for 4 classes"):
        SegMIoUMetric(num_classes=4, class_names=["a", "b", "c"])


def _mink(**kw):
    cfg = dict(type="PointSegmentor", num_classes=3, loss_weights=dict(ce=1.0, lovasz=1.0),
               backbone=dict(type="MinkUNetBackbone", in_channels=4, base_channels=8, encoder_channels=(8, 16),
                             encoder_blocks=(1, 1), decoder_channels=(16, 8), decoder_blocks=(1, 1),
                             voxel_size=(0.5, 0.5, 0.5), point_range=(-8, -8, -2, 8, 8, 2)),
               decode_head=dict(type="SegHead"))
    cfg.update(kw)
    return MODELS.build(cfg)


def _toy_scene(seed: int, n: int = 1500):
    """Ground plane (class 0), a box-shaped object (1) and a pole (2)."""
    g = torch.Generator().manual_seed(seed)
    ground = torch.cat([torch.rand(n, 2, generator=g) * 14 - 7, torch.zeros(n, 1) - 1.5], 1)
    c = torch.rand(2, generator=g) * 6 - 3
    obj = torch.cat([c + torch.rand(n // 3, 2, generator=g) * 2 - 1, torch.rand(n // 3, 1, generator=g) - 1.2], 1)
    pole = torch.cat([-c + torch.randn(n // 5, 2, generator=g) * 0.05, torch.rand(n // 5, 1, generator=g) * 3 - 1.5],
                     1)
    xyz = torch.cat([ground, obj, pole])
    pts = torch.cat([xyz, torch.rand(xyz.shape[0], 1, generator=g)], 1)
    lab = torch.cat([torch.zeros(n), torch.ones(n // 3), torch.full((n // 5,), 2)]).long()
    return pts, lab


def _train_toy_miou(model, steps: int = 40, scene=None, key: str = "seg/mIoU", **metric) -> float:
    """Train ``model`` on four toy scenes (``scene(seed)`` → points, labels; default ``_toy_scene``; AdamW 1e-2),
    return the metric ``key`` on a fifth (``metric``: SegMIoUMetric arguments, default 3 classes)."""
    scene = scene or _toy_scene
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scenes = [scene(s) for s in range(4)]
    for step in range(steps):
        pts, lab = scenes[step % 4]
        loss = sum(model(dict(points=[pts]), dict(gt_segment=[lab]), mode="loss").values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    pts, lab = scene(99)
    with torch.no_grad():
        pred = model(dict(points=[pts]), mode="predict")[0]["pred_segment"]
    m = SegMIoUMetric(**(metric or dict(num_classes=3)))
    m.process(None, [dict(pred_segment=pred, gt_segment=lab)])
    return m.evaluate(1)[key]


def test_voxel_to_point_projection_and_ignored_out_of_range_points():
    model = _mink().eval()
    pts = torch.tensor([[0.1, 0.1, 0.1, 0.5], [0.2, 0.3, 0.2, 0.5], [3.1, 0.1, 0.1, 0.2], [50.0, 0.0, 0.0, 0.1]])
    logits = model(dict(points=[pts]), mode="tensor")
    assert torch.equal(logits[0], logits[1])                  # same 0.5 m voxel → same logits
    assert not torch.equal(logits[0], logits[2]) and (logits[3] == 0).all()      # out of range: no prediction
    model.train()
    out = model(dict(points=[pts]), dict(gt_segment=[torch.tensor([0, 1, 2, -1])]), mode="loss")
    assert torch.isfinite(sum(out.values()))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*found 7"):
        model(dict(points=[pts]), dict(gt_segment=[torch.tensor([0, 1, 7, 0])]), mode="loss")


def test_minkunet_segmentor_learns_a_toy_scene():
    torch.manual_seed(0)
    model = _mink()
    assert _train_toy_miou(model) > 80


def _painted_plane(seed: int, n: int = 3000):
    """A flat ground over ±30 m whose 0.5 m cells are painted (class 1) at random: paint differs from asphalt
    (class 0) only in intensity (0.3 vs 0.03, ×15 % log-normal noise), as lane markings do in the mini data."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 60 - 30
    cell = torch.floor(xy / 0.5).long()
    painted = (cell[:, 0] * 7 + cell[:, 1] * 13 + seed) % 5 == 0
    inten = torch.where(painted, 0.3, 0.03) * torch.exp(0.15 * torch.randn(n, generator=g))
    return torch.cat([xy, torch.full((n, 1), -1.8), inten[:, None]], 1), painted.long()


@pytest.mark.parametrize("input_norm", [True, False])
def test_minkunet_input_norm_lets_intensity_through(input_norm):
    """Raw voxel features are metres (x, y up to 30) beside an intensity below 1: without the input BatchNorm the
    net does not learn an intensity-only class in 40 steps (it predicts asphalt everywhere); with it, it does."""
    torch.manual_seed(0)
    model = _mink(num_classes=2, backbone=dict(
        type="MinkUNetBackbone", in_channels=4, base_channels=8, encoder_channels=(8, 16), encoder_blocks=(1, 1),
        decoder_channels=(16, 8), decoder_blocks=(1, 1), voxel_size=(0.5, 0.5, 0.5),
        point_range=(-32, -32, -2, 32, 32, 2), input_norm=input_norm))
    iou_paint = _train_toy_miou(model, scene=_painted_plane, key="seg/IoU.paint", num_classes=2,
                                class_names=["asphalt", "paint"])
    if input_norm:
        assert iou_paint > 95
    else:
        assert iou_paint < 20


def test_four_rotation_tta_is_invariant_to_quarter_turns():
    torch.manual_seed(0)
    model = _mink(test_cfg=dict(tta_rotations=4)).eval()
    for mod in model.modules():                               # random BN statistics: a less trivial network
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
    pts, _ = _toy_scene(1)
    pts[:, :2] += 0.01                                        # keep points off the voxel boundaries
    rot = pts.clone()
    rot[:, 0], rot[:, 1] = -pts[:, 1], pts[:, 0]
    with torch.no_grad():
        pa, _ = model._tta_probs([pts])
        pb, _ = model._tta_probs([rot])
        la = model(dict(points=[pts]), mode="tensor").softmax(1)
        lb = model(dict(points=[rot]), mode="tensor").softmax(1)
        a = model(dict(points=[pts]), mode="predict")[0]["pred_segment"]
        b = model(dict(points=[rot]), mode="predict")[0]["pred_segment"]
    same = ((pa - pb).abs() < 1e-5).all(1).float().mean()
    assert same > 0.99 and (a == b).float().mean() > 0.99     # TTA: the same scores after a quarter turn
    assert ((la - lb).abs() < 1e-5).all(1).float().mean() < 0.5   # one view alone is not rotation invariant


def test_bad_segmentor_configs():
    with pytest.raises(ValueError, match="unknown test_cfg"):
        _mink(test_cfg=dict(tta=4))
    with pytest.raises(ValueError, match="unknown loss"):
        _mink(loss_weights=dict(dice=1.0))
    with pytest.raises(ValueError, match="must have the same length"):
        MODELS.build(dict(type="MinkUNetBackbone", encoder_channels=(8, 16), encoder_blocks=(1,)))


def test_dsvt_segmentation_backbone_keeps_every_voxel_and_learns():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type="PointSegmentor", num_classes=3, loss_weights=dict(ce=1.0, lovasz=1.0),
        backbone=dict(type="DSVTSegBackbone", in_channels=4, d_model=16, nhead=2, dim_feedforward=32, set_size=12,
                      num_blocks=2, window_shape=(8, 8, 8), voxel_size=(0.5, 0.5, 0.5),
                      point_range=(-8, -8, -2, 8, 8, 2)),
        decode_head=dict(type="SegHead")))
    pts, lab = _toy_scene(0)
    x, p2v = model.backbone.voxelize([pts])
    feats, _ = model.backbone(x)
    assert feats.feats.shape == (x.feats.shape[0], model.backbone.out_channels) and torch.equal(feats.coords, x.coords)
    assert _train_toy_miou(model) > 70


@pytest.mark.parametrize("name", ["minkunet_waymo_mini", "e3dsnn_seg_waymo_mini", "dsvt_seg_waymo_mini"])
def test_mini_segmentation_configs_build_and_predict(name):
    from pathlib import Path

    from mmengine.config import Config
    repo = Path(__file__).resolve().parents[1]
    cfg = Config.fromfile(str(repo / "configs" / f"{name}.py"))
    assert cfg.prepare_data.type == "prepare_waymo_mini_seg" and cfg.val_evaluator.class_names[17] == "road"
    assert Path(cfg.prepare_data.root).resolve() == repo / "data" / "waymo_mini"      # the detection configs' data
    assert Path(cfg.val_dataloader.dataset.data_root).resolve() == repo / "data" / "waymo_mini"
    model = MODELS.build(cfg.model).eval()
    pts, _ = _toy_scene(0, 400)
    pts[:, 3] = pts[:, 3] * 5                                  # raw intensities: squashed by the model (tanh)
    with torch.no_grad():
        out = model(dict(points=[pts]), mode="predict")[0]["pred_segment"]
    assert out.shape == (pts.shape[0],) and 0 <= int(out.min()) and int(out.max()) < 22
