"""Detection model tests: CenterHead targets / losses / decoding by hand, VFEs against per-voxel loops,
BEV parts, the CenterPoint detector learning a tiny scene, init_model / inference_detector, checkpoint errors."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.models.backbones.bev import BaseBEVBackbone, BaseBEVResBackbone, HeightCompression
from perception3d.models.heads.center_head import (CenterHead, draw_gaussian, focal_loss_centernet,
                                                   gaussian_radius)
from perception3d.models.voxel_encoders import DynamicPillarVFE, DynamicVFE
from perception3d.sparse import SparseTensor

PCR = [-8.0, -8.0, -2.0, 8.0, 8.0, 4.0]
CLASSES = ["Car", "Pedestrian", "Cyclist"]


def _head(**kw):
    kw.setdefault("test_cfg", dict(score_thresh=0.05, nms_type="rotate", nms_thr=0.1))
    return CenterHead(16, CLASSES, PCR, [0.5, 0.5, 0.5], out_size_factor=2, min_radius=1, **kw)


def test_gaussian_radius_and_draw_by_hand():
    # CenterPoint's radius for a 4 × 2 cell box at overlap 0.1: the minimum of the three roots (case 3 here)
    # roots worked out by hand: r1 = (6 + √(36 − 4·7.2/1.1))/2 = 4.567, r2 = (12 + √(144 − 115.2))/2 = 8.683,
    # r3 = (−1.2 + √(1.44 + 11.52))/2 = 1.2
    assert gaussian_radius(4.0, 2.0, 0.1) == pytest.approx(1.2, abs=1e-9)
    # 10 × 10 at overlap 0.5: b3 = −2·0.5·20 = −20, c3 = −50, r3 = (−20 + √(400 + 400))/2 = 10(√2 − 1)
    assert gaussian_radius(10.0, 10.0, 0.5) == pytest.approx(10 * (math.sqrt(2) - 1), abs=1e-9)
    hm = torch.zeros(7, 9)
    draw_gaussian(hm, 1, 2, 2)  # near the left border: clipped
    sigma = 5 / 6
    assert hm[2, 1] == 1 and hm[2, 2] == pytest.approx(math.exp(-1 / (2 * sigma ** 2)))
    assert hm[4, 3] == pytest.approx(math.exp(-8 / (2 * sigma ** 2))) and hm[5, 1] == 0 and hm[2, 4] == 0
    draw_gaussian(hm, 8, 6, 1)  # corner
    assert hm[6, 8] == 1


def test_focal_loss_by_hand():
    target = torch.tensor([[[1.0, 0.5, 0.0]]])
    logits = torch.logit(torch.tensor([[[0.8, 0.3, 0.1]]]))
    pos = math.log(0.8) * 0.2 ** 2
    neg = math.log(0.7) * 0.3 ** 2 * 0.5 ** 4 + math.log(0.9) * 0.1 ** 2 * 1.0
    assert float(focal_loss_centernet(logits, target)) == pytest.approx(-(pos + neg), rel=1e-5)


def test_center_head_targets_decode_round_trip():
    head = _head()
    gt = torch.tensor([[1.3, -2.1, -1.0, 4.0, 1.8, 1.5, 0.4], [-5.0, 4.2, -0.8, 0.7, 0.8, 1.7, -2.0]])
    labels = torch.tensor([0, 1])
    (t,) = head.get_targets([gt], [labels], (16, 16))
    # cell size 1 m (0.5 m voxel × stride 2): car centre (1.3, -2.1) → cell (9, 5), offsets (0.3, 0.9)
    assert t["ind"][0, 0] == 5 * 16 + 9 and t["heatmap"][0, 0, 5, 9] == 1 and t["heatmap"][0, 1, 5, 9] < 1
    assert torch.allclose(t["box"][0, 0], torch.tensor([0.3, 0.9, -0.25, math.log(4), math.log(1.8),
                                                        math.log(1.5), math.cos(0.4), math.sin(0.4)]), atol=1e-5)
    assert t["mask"][0].tolist()[:3] == [1, 1, 0]
    # a perfect prediction built from the targets decodes back to the boxes
    preds = dict(hm=torch.logit(t["heatmap"].clamp(1e-6, 1 - 1e-6)), center=torch.zeros(1, 2, 16, 16),
                 center_z=torch.zeros(1, 1, 16, 16), dim=torch.zeros(1, 3, 16, 16), rot=torch.zeros(1, 2, 16, 16))
    for k in range(2):
        y, x = divmod(int(t["ind"][0, k]), 16)
        b = t["box"][0, k]
        preds["center"][0, :, y, x] = b[:2]
        preds["center_z"][0, 0, y, x] = b[2]
        preds["dim"][0, :, y, x] = b[3:6]
        preds["rot"][0, :, y, x] = b[6:8]
    head.test_cfg["score_thresh"] = 0.99  # only the two peaks (their Gaussian neighbours score lower)
    (res,) = head.predict([preds])
    order = res["labels_3d"].argsort()  # equal scores: order by label
    res = {k: v[order] for k, v in res.items()}
    assert res["bboxes_3d"].shape[0] == 2 and res["labels_3d"].tolist() == [0, 1]
    assert torch.allclose(res["bboxes_3d"], gt, atol=1e-4) and torch.allclose(res["scores_3d"], torch.ones(2))
    losses = head.loss([preds], [gt], [labels])
    assert float(losses["loss_bbox"]) == pytest.approx(0.0, abs=1e-5)


def test_center_head_tasks_iou_branch_and_nms():
    head = _head(tasks=[["Car"], ["Pedestrian", "Cyclist"]], with_iou=True,
                 test_cfg=dict(score_thresh=0.05, nms_type="circle", circle_min_radius=[4.0, 0.5, 0.5],
                               iou_rectifier=[0.5, 0.5, 0.5]))
    x = torch.randn(2, 16, 16, 16)
    preds = head(x)
    assert [p["hm"].shape[1] for p in preds] == [1, 2] and preds[0]["iou"].shape == (2, 1, 16, 16)
    gt = [torch.tensor([[1.3, -2.1, -1.0, 4.0, 1.8, 1.5, 0.4], [3.0, 3.0, -1.0, 0.8, 0.8, 1.7, 0.0]]),
          torch.zeros(0, 7)]
    lab = [torch.tensor([0, 2]), torch.zeros(0, dtype=torch.long)]
    losses = head.loss(preds, gt, lab)
    assert set(losses) == {f"loss_{n}_task{i}" for n in ("heatmap", "bbox", "iou") for i in (0, 1)}
    sum(losses.values()).backward()
    assert head.task_heads[0].iou[-1].weight.grad.abs().sum() > 0
    # circle NMS on a heatmap set by hand: car peaks at cells (5, 5), (5, 6) (1 m apart: the lower one is
    # suppressed, radius² 4) and (12, 12); offsets and IoU branch zeroed so centres sit on the cells (x = y = −3, 4)
    fixed = [{k: torch.zeros_like(v) if k in ("center", "iou") else v.detach().clone() for k, v in p.items()}
             for p in preds]
    fixed[0]["hm"].fill_(-20.0)
    fixed[0]["hm"][0, 0, 5, 5], fixed[0]["hm"][0, 0, 5, 6], fixed[0]["hm"][0, 0, 12, 12] = 3.0, 2.0, 1.0
    fixed[1]["hm"].fill_(-20.0)
    res = head.predict(fixed)
    cars = res[0]["bboxes_3d"][res[0]["labels_3d"] == 0, :2]
    assert len(cars) == 2 and len(res[1]["labels_3d"]) == 0
    assert sorted(cars[:, 0].tolist()) == pytest.approx([-3.0, 4.0]) and torch.equal(cars[:, 0], cars[:, 1])
    with pytest.raises(KeyError, match="nms_thresh"):
        _head(test_cfg=dict(nms_thresh=0.5))


def test_center_head_iou_reg_loss_is_one_minus_diou_at_the_target_cell():
    from perception3d.ops import box_diou_3d_axis_aligned
    head = _head(iou_reg_loss=True)
    gt_box = torch.tensor([[1.3, -2.1, -1.0, 4.0, 1.8, 1.5, 0.4]])
    preds = [{k: v.detach().requires_grad_() for k, v in p.items()} for p in head(torch.randn(1, 16, 16, 16))]
    losses = head.loss(preds, [gt_box], [torch.tensor([0])])
    assert set(losses) == {"loss_heatmap", "loss_bbox", "loss_iou_reg"}
    # by hand: the target cell of (1.3, -2.1) on 1 m cells from -8 is (x 9, y 5); decode the box there
    p = preds[0]
    ix, iy = 9, 5
    dims = p["dim"][0, :, iy, ix].exp()
    box = torch.stack([-8 + ix + p["center"][0, 0, iy, ix], -8 + iy + p["center"][0, 1, iy, ix],
                       p["center_z"][0, 0, iy, ix] - dims[2] / 2, dims[0], dims[1], dims[2],
                       torch.atan2(p["rot"][0, 1, iy, ix], p["rot"][0, 0, iy, ix])])
    want = 2.0 * (1 - box_diou_3d_axis_aligned(box[None], gt_box))[0]
    assert torch.allclose(losses["loss_iou_reg"], want, atol=1e-5)
    losses["loss_iou_reg"].backward()
    g = p["center"].grad[0].abs().sum(0)
    assert g[iy, ix] > 0 and g.sum() == g[iy, ix]          # only the target cell is pulled
    assert p["rot"].grad is None or p["rot"].grad.abs().sum() == 0   # the DIoU ignores the yaw
    empty = head.loss(head(torch.randn(1, 16, 16, 16)), [torch.zeros(0, 7)], [torch.zeros(0, dtype=torch.long)])
    assert empty["loss_iou_reg"].item() == 0.0


def _points(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([16.0, 16.0, 6.0]) - torch.tensor([8.0, 8.0, 2.0])
    return torch.cat([xyz, torch.rand(n, 3, generator=g)], 1)


def test_dynamic_vfe_is_the_mean_per_voxel():
    pts = [_points(300, 0), _points(200, 1)]
    st = DynamicVFE([2.0, 2.0, 3.0], PCR, num_point_features=4)(pts)
    assert st.feats.shape[1] == 4 and st.batch_size == 2 and st.spatial_shape == (2, 8, 8)
    for row in [0, len(st.feats) // 2, len(st.feats) - 1]:
        b, z, y, x = st.coords[row].tolist()
        p = pts[b]
        m = ((p[:, 0] + 8) // 2 == x) & ((p[:, 1] + 8) // 2 == y) & ((p[:, 2] + 2) // 3 == z)
        assert torch.allclose(st.feats[row], p[m, :4].mean(0), atol=1e-5)


def test_center_head_norms_bias_and_init_as_openpcdet():
    """OpenPCDet / DSVT CenterHead: every BN eps 1e-3, momentum 0.01; the shared conv has no bias (BN follows);
    every conv of every regression tower is Kaiming-normal (std √(2 / fan_in)) with zero bias; the heat-map
    tower keeps the -2.19 prior bias."""
    torch.manual_seed(0)
    head = CenterHead(64, CLASSES, PCR, [0.5, 0.5, 0.5], out_size_factor=2, shared_conv_channels=64,
                      head_conv_channels=64, with_iou=True)
    bns = [m for m in head.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1 + 6 and all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
    assert head.shared_conv[0].bias is None
    tower = head.task_heads[0]
    for name in ("center", "center_z", "dim", "rot", "iou"):
        convs = [m for m in getattr(tower, name) if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 2 and convs[0].bias is None
        for conv in convs:
            fan_in = conv.weight[0].numel()
            std = conv.weight.std().item()
            assert abs(std / math.sqrt(2 / fan_in) - 1) < 0.15, (name, std, math.sqrt(2 / fan_in))
        assert torch.equal(convs[-1].bias, torch.zeros_like(convs[-1].bias))
    hm = [m for m in tower.hm if isinstance(m, torch.nn.Conv2d)]
    assert torch.allclose(hm[-1].bias, torch.full_like(hm[-1].bias, -2.19))
    assert hm[0].weight.std().item() < 0.6 * math.sqrt(2 / hm[0].weight[0].numel())   # PyTorch default, not Kaiming


def test_score_threshold_applies_to_the_raw_heatmap_score_before_iou_rectification():
    """DSVT's decode: keep peaks whose raw sigmoid score > 0.1, then rectify s^(1−α)·iou^α (α 0.68)."""
    head = _head(with_iou=True, test_cfg=dict(score_thresh=0.1, nms_type=None, iou_rectifier=[0.68] * 3))
    h = w = 16
    logit = lambda p: math.log(p / (1 - p))     # noqa: E731
    preds = dict(hm=torch.full((1, 3, h, w), -20.0), center=torch.full((1, 2, h, w), 0.5),
                 center_z=torch.zeros(1, 1, h, w), dim=torch.zeros(1, 3, h, w), rot=torch.zeros(1, 2, h, w),
                 iou=torch.zeros(1, 1, h, w))
    preds["rot"][:, 0] = 1
    preds["hm"][0, 0, 3, 3] = logit(0.15)       # raw 0.15 > 0.1, IoU 0.02 → rectified 0.15^0.32·0.02^0.68 ≈ 0.04
    preds["iou"][0, 0, 3, 3] = 2 * 0.02 - 1
    preds["hm"][0, 0, 10, 10] = logit(0.08)     # raw 0.08 < 0.1, IoU 1 → rectified 0.08^0.32 ≈ 0.45
    preds["iou"][0, 0, 10, 10] = 1.0
    res = head.predict([preds])[0]
    assert res["scores_3d"].shape == (1,)
    expect = 0.15 ** 0.32 * 0.02 ** 0.68
    assert abs(res["scores_3d"][0].item() - expect) < 1e-4 and expect < 0.1
    cell = head.voxel_size[0] * head.out_size_factor
    assert abs(res["bboxes_3d"][0, 0].item() - (PCR[0] + 3.5 * cell)) < 1e-4


def test_tanh_on_intensity_and_elongation_before_the_vfe():
    """DSVT's loader squashes intensity and elongation with tanh (``points_tanh_dim`` [3, 4] in dsvt_waymo.py):
    the VFE then gives the same output for raw features as a plain VFE for tanh'd ones."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(Path(__file__).resolve().parents[1] / "configs" / "dsvt_waymo.py"))
    assert list(cfg.model.voxel_encoder.points_tanh_dim) == [3, 4]
    pts = _points(300, 4)
    pts = torch.cat([pts, torch.rand(300, 1) * 4], 1)
    pts[:, 3] *= 300.0                                   # Waymo-like raw intensities
    torch.manual_seed(0)
    vfe = DynamicPillarVFE([4.0, 4.0, 6.0], PCR, num_point_features=5, num_filters=[8], points_tanh_dim=[3, 4])
    torch.manual_seed(0)
    plain = DynamicPillarVFE([4.0, 4.0, 6.0], PCR, num_point_features=5, num_filters=[8])
    squashed = pts.clone()
    squashed[:, 3:5] = torch.tanh(squashed[:, 3:5])
    vfe.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(vfe([pts]).feats, plain([squashed]).feats)
        assert not torch.allclose(vfe([pts]).feats, plain([pts]).feats)
    with pytest.raises(ValueError, match="points_tanh_dim"):
        DynamicPillarVFE([4.0, 4.0, 6.0], PCR, num_point_features=5, points_tanh_dim=[2])


def test_dynamic_pillar_vfe_features_by_hand():
    pts = [_points(300, 2)]
    vfe = DynamicPillarVFE([4.0, 4.0, 6.0], PCR, num_point_features=4, num_filters=[8])
    lin = vfe.pfn_layers[0].linear
    assert lin.in_features == 4 + 6
    captured = {}
    lin.register_forward_hook(lambda m, i, o: captured.update(x=i[0]) if "x" not in captured else None)
    vfe.eval()
    st = vfe(pts)
    assert st.spatial_shape == (4, 4) and st.coords.shape[1] == 3 and st.feats.shape == (len(st.coords), 8)
    x = captured["x"]  # per-point input: [x, y, z, f, xyz - cluster mean, xyz - pillar centre]
    p = pts[0]
    cell = torch.stack([(p[:, 1] + 8) // 4, (p[:, 0] + 8) // 4], 1)
    for i in [0, 77, 299]:
        same = (cell == cell[i]).all(1)
        assert torch.allclose(x[i, :4], p[i, :4])
        assert torch.allclose(x[i, 4:7], p[i, :3] - p[same, :3].mean(0), atol=1e-5)
        centre = torch.tensor([cell[i, 1] * 4 - 6.0, cell[i, 0] * 4 - 6.0, 1.0])
        assert torch.allclose(x[i, 7:10], p[i, :3] - centre, atol=1e-5)
    # output = max over the pillar's points of ReLU(BN(Linear(x)))
    y = torch.relu(vfe.pfn_layers[0].norm(lin(x)))
    row = 0
    b, yy, xx = st.coords[row].tolist()
    same = (cell[:, 0] == yy) & (cell[:, 1] == xx)
    assert torch.allclose(st.feats[row], y[same].max(0).values, atol=1e-5)


def test_bev_parts_shapes():
    st = SparseTensor(torch.arange(6.0).reshape(3, 2), torch.tensor([[0, 0, 1, 2], [0, 1, 0, 0], [1, 1, 2, 3]]),
                      (2, 3, 4), 2)
    bev = HeightCompression(4)(st)
    assert bev.shape == (2, 4, 3, 4) and bev[0, 0 * 2 + 0, 1, 2] == 0 and bev[0, 1 * 2 + 1, 0, 0] == 3
    assert bev[1, 0 * 2 + 1, 2, 3] == 4 and bev.abs().sum() == 15
    with pytest.raises(ValueError, match="num_bev_features=5"):
        HeightCompression(5)(st)
    x = torch.randn(2, 8, 16, 16)
    m = BaseBEVBackbone(8, [1, 1], [1, 2], [8, 16], [1, 2], [8, 8])
    assert m(x).shape == (2, 16, 16, 16)
    m = BaseBEVResBackbone(8, [1, 2, 2], [1, 2, 2], [8, 8, 16], [1, 2, 4], [4, 4, 4])
    assert m(x).shape == (2, 12, 16, 16)


def _tiny_cfg(voxel=False):
    from mmengine.config import Config
    if voxel:
        enc = dict(voxel_encoder=dict(type="DynamicVFE", voxel_size=[0.5, 0.5, 0.25], point_cloud_range=PCR,
                                      num_point_features=4),
                   backbone_3d=dict(type="VoxelResBackBone8x", in_channels=4, base_channels=4, out_channels=8,
                                    blocks_per_stage=1),
                   map_to_bev=dict(type="HeightCompression", num_bev_features=8))
        osf = 8
    else:
        enc = dict(voxel_encoder=dict(type="DynamicPillarVFE", voxel_size=[0.5, 0.5, 6.0], point_cloud_range=PCR,
                                      num_point_features=4, num_filters=[16]),
                   map_to_bev=dict(type="PointPillarScatter", num_bev_features=16))
        osf = 2
    model = dict(type="CenterPoint", **enc,
                 backbone_2d=dict(type="BaseBEVBackbone", in_channels=enc["map_to_bev"]["num_bev_features"],
                                  layer_nums=[1], layer_strides=[2 if not voxel else 1], num_filters=[16],
                                  upsample_strides=[1], num_upsample_filters=[16]),
                 bbox_head=dict(type="CenterHead", in_channels=16, class_names=CLASSES, point_cloud_range=PCR,
                                voxel_size=[0.5, 0.5], out_size_factor=osf, shared_conv_channels=16,
                                head_conv_channels=16, min_radius=1,
                                test_cfg=dict(score_thresh=0.2, nms_type="rotate", nms_thr=0.1)))
    return Config(dict(model=model, test_dataloader=dict(dataset=dict(load_dim=6, use_dim=4))))


def _scene(seed):
    """Ground plane points + points on the faces of one car-sized box."""
    g = np.random.default_rng(seed)
    ground = np.c_[g.uniform(-8, 8, (600, 2)), g.normal(-1.8, 0.02, 600)]
    cx, cy, yaw = g.uniform(-4, 4), g.uniform(-4, 4), g.uniform(-0.5, 0.5)
    u = g.uniform(-0.5, 0.5, (500, 3)) * [4.0, 1.8, 1.5]
    face = g.integers(0, 2, 500)
    u[face == 0, 0] = np.sign(u[face == 0, 0]) * 2.0
    u[face == 1, 1] = np.sign(u[face == 1, 1]) * 0.9
    c, s = math.cos(yaw), math.sin(yaw)
    car = np.c_[cx + c * u[:, 0] - s * u[:, 1], cy + s * u[:, 0] + c * u[:, 1], -1.8 + 0.75 + u[:, 2]]
    xyz = np.r_[ground, car].astype(np.float32)
    pts = np.c_[xyz, g.uniform(0, 1, (len(xyz), 1))].astype(np.float32)
    box = torch.tensor([[cx, cy, -1.8, 4.0, 1.8, 1.5, yaw]], dtype=torch.float32)
    return torch.from_numpy(pts), box


def test_centerpoint_pillar_learns_a_tiny_scene_and_inference_api(tmp_path):
    from perception3d.apis import inference_detector, init_model
    torch.manual_seed(0)
    cfg = _tiny_cfg()
    model = init_model(cfg).train()
    scenes = [_scene(s) for s in range(2)]
    data = dict(inputs=dict(points=[p for p, _ in scenes]),
                data_samples=[dict(gt_bboxes_3d=b, gt_labels_3d=torch.tensor([0])) for _, b in scenes])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for it in range(60):
        batch = model.data_preprocessor(data, True)
        losses = model(**batch, mode="loss")
        loss = sum(losses.values())
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.3 * first, (first, float(loss))
    # BN momentum is 0.01 (OpenPCDet): after 60 steps the running stats are still near their init, so
    # recalibrate them on the two scenes (cumulative average) before evaluating
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(**model.data_preprocessor(data, True), mode="tensor")
    model.eval()
    dets = inference_detector(model, [p for p, _ in scenes])
    for det, (_, box) in zip(dets, scenes):
        assert det["bboxes_3d"].shape[1] == 7 and det["labels_3d"][0] == 0
        assert torch.dist(det["bboxes_3d"][0, :2], box[0, :2]) < 0.5  # best detection on the car
    # single cloud (ndarray / .bin path) → one dict; same numbers as in the batch
    path = tmp_path / "frame.bin"
    p0 = scenes[0][0].numpy()
    np.c_[p0, np.zeros((len(p0), 2), np.float32)].astype(np.float32).tofile(path)
    one = inference_detector(model, str(path))
    assert torch.allclose(one["bboxes_3d"], dets[0]["bboxes_3d"], atol=1e-4)
    # checkpoint round trip, and a checkpoint of another model is refused with the keys named
    ck = tmp_path / "m.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ck)
    again = init_model(cfg, str(ck))
    assert torch.allclose(inference_detector(again, scenes[0][0])["scores_3d"], dets[0]["scores_3d"])
    torch.save(dict(state_dict=torch.nn.Linear(2, 2).state_dict()), tmp_path / "other.pth")
    with pytest.raises(KeyError, match=r"missing keys.*voxel_encoder.*unexpected keys.*'weight'"):
        init_model(cfg, str(tmp_path / "other.pth"))


def test_centerpoint_voxel_forward_backward_and_misspelt_arg():
    from mmengine.registry import DefaultScope
    from perception3d.registry import MODELS
    cfg = _tiny_cfg(voxel=True)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    (p, b), (p2, b2) = _scene(0), _scene(1)
    data = model.data_preprocessor(dict(inputs=dict(points=[p, p2[:0]]),  # the 2nd frame is empty
                                        data_samples=[dict(gt_bboxes_3d=b, gt_labels_3d=torch.tensor([0])),
                                                      dict(gt_bboxes_3d=torch.zeros(0, 7),
                                                           gt_labels_3d=torch.zeros(0, dtype=torch.long))]), True)
    losses = model(**data, mode="loss")
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.backbone_3d.conv_input[0].weight.grad.abs().sum() > 0
    out = model(**data, mode="predict")
    assert "pred_instances_3d" in out[1] and out[0]["pred_instances_3d"]["bboxes_3d"].shape[1] == 7
    bad = cfg.model.copy()
    bad["bbox_head"] = dict(bad["bbox_head"], gausian_overlap=0.1)
    with pytest.raises(TypeError, match="gausian_overlap"):
        with DefaultScope.overwrite_default_scope("perception3d"):
            MODELS.build(bad)


def test_visualize_tool_writes_bev_png(tmp_path):
    import importlib.util
    from pathlib import Path
    from perception3d.apis import init_model
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("vis_tool", root / "tools" / "visualize.py")
    vis = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vis)
    cfg = _tiny_cfg()
    cfg_path = tmp_path / "tiny.py"
    cfg.dump(str(cfg_path))
    torch.manual_seed(0)
    model = init_model(cfg)
    torch.save(dict(state_dict=model.state_dict()), tmp_path / "m.pth")
    pts, box = _scene(0)
    np.c_[pts.numpy(), np.zeros((len(pts), 2), np.float32)].astype(np.float32).tofile(tmp_path / "f.bin")
    out = vis.main([str(cfg_path), str(tmp_path / "m.pth"), "--points", str(tmp_path / "f.bin"),
                    "--score-thr", "0.0", "--out-dir", str(tmp_path / "vis")])
    import matplotlib.image as mpimg
    img = mpimg.imread(out[0])
    assert img.shape[0] > 300 and img.shape[1] > 300
    # box outline geometry: a yaw-0 box 4 × 2 at (1, 2) has corners (3, 3), (-1, 3), (-1, 1), (3, 1)
    c = vis.bev_corners(np.array([[1.0, 2.0, 0, 4.0, 2.0, 1.0, 0.0]]))
    assert np.allclose(c[0, :4], [[3, 3], [-1, 3], [-1, 1], [3, 1]])


@pytest.mark.parametrize("name", ["centerpoint_voxel_waymo.py", "centerpoint_voxel_waymo_mini.py"])
def test_configs_build(name):
    from pathlib import Path
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from perception3d.registry import MODELS
    cfg = Config.fromfile(str(Path(__file__).resolve().parents[1] / "configs" / name))
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    n = sum(p.numel() for p in model.parameters())
    head = model.bbox_head
    assert head.class_names == ["Car", "Pedestrian", "Cyclist"] and len(head.tasks) == 1
    if name == "centerpoint_voxel_waymo.py":  # the official grid: 1504 × 1504 × 40, BEV 188 × 188 × 256
        assert cfg.model.voxel_encoder.voxel_size == [0.1, 0.1, 0.15]
        assert head.out_size_factor is None and head.voxel_size is None  # read from the backbone's BEV grid
        assert 7e6 < n < 1e7, n
    else:
        assert cfg.prepare_data.type == "prepare_waymo_mini" and n < 3e6


@pytest.mark.slow
def test_centerpoint_mini_reaches_ap(tmp_path):
    """configs/centerpoint_voxel_waymo_mini.py at seed 0: vehicle LEVEL_1 AP ≥ 0.60 and pedestrian ≥ 0.40 on the
    mini val split (the run prepares the data on first use; the wall time is printed, not asserted: it depends on
    the machine and its load — docs/model_zoo.md records the measured times)."""
    from _mini_training import train_mini
    m, wall = train_mini("centerpoint_voxel_waymo_mini.py", tmp_path, seed=0)
    print(f"centerpoint_voxel_waymo_mini seed 0: {m}, {wall:.0f} s")
    assert m["Vehicle/L1 mAP"] >= 0.60 and m["Pedestrian/L1 mAP"] >= 0.40, (m, wall)


def test_voxel_resbackbone_xy_strides():
    from perception3d.models.backbones.subm_resnet import VoxelResBackBone8x
    from perception3d.sparse import SparseTensor
    coords = torch.tensor([[0, 3, 10, 12], [0, 5, 40, 33], [0, 20, 63, 63]])
    x = SparseTensor(torch.randn(3, 5), coords, (24, 64, 64), 1)
    y8 = VoxelResBackBone8x(5, 4, 8, 1)(x)
    y4 = VoxelResBackBone8x(5, 4, 8, 1, xy_strides=(2, 2, 1))(x)
    assert y8.stride == (16, 8, 8) and tuple(y8.spatial_shape[1:]) == (8, 8)
    assert y4.stride == (16, 4, 4) and tuple(y4.spatial_shape[1:]) == (16, 16)
    # the voxel at x, y = (63, 63) lands in cell 63 // 4 = 15 at stride 4 (conv4 keeps x/y, kernel 3 pad 1)
    assert ((y4.coords[:, 2] == 15) & (y4.coords[:, 3] == 15)).any()
    with pytest.raises(ValueError, match="xy_strides"):
        VoxelResBackBone8x(5, xy_strides=(2, 3, 2))


# -- the BEV grid: heads read cell size and origin off the sparse tensor ------------------------------------------
def test_bev_grid_from_sparse_worked_by_hand():
    from perception3d.sparse import SparseTensor
    from perception3d.structures import BEVGrid
    # (z, y, x) voxels of 0.25 / 0.5 / 0.2 m from origin (-3, -10, -20), at stride (2, 4, 8): a BEV cell is
    # 0.2·8 = 1.6 m in x and 0.5·4 = 2 m in y; 40 × 25 cells at that stride
    st = SparseTensor(torch.zeros(1, 1), torch.tensor([[0, 0, 0, 0]], dtype=torch.int32), (5, 25, 40), 1,
                      stride=(2, 4, 8), voxel_size=(0.25, 0.5, 0.2), origin=(-3.0, -10.0, -20.0))
    g = BEVGrid.from_sparse(st)
    assert g == BEVGrid((1.6, 2.0), (-20.0, -10.0), (25, 40))
    # a 2-D backbone that halves the map doubles the cell; one that up-samples 2× halves it
    assert BEVGrid.from_sparse(st).resampled((13, 20)).cell == (1.6 * 40 / 20, 2.0 * 25 / 13)
    assert g.resampled((50, 80)).cell == (0.8, 1.0) and g.resampled((50, 80)).origin == (-20.0, -10.0)
    with pytest.raises(ValueError, match="voxel_size"):
        BEVGrid.from_sparse(SparseTensor(torch.zeros(1, 1), torch.tensor([[0, 0, 0]], dtype=torch.int32), (4, 4), 1))


@pytest.mark.parametrize("voxel", [False, True])
def test_head_reads_the_backbone_grid_exactly_as_the_restated_config(voxel):
    """The same model with and without voxel_size / out_size_factor in the head's config: identical losses and
    predictions (the grid's numbers are the restated ones, bit for bit); a config that disagrees is an error."""
    from mmengine.registry import DefaultScope
    from perception3d.registry import MODELS
    cfg = _tiny_cfg(voxel)
    pts, box = _scene(3)
    labels = torch.tensor([0])
    outs = []
    for restate in (True, False):
        head = dict(cfg.model.bbox_head)
        if not restate:
            head.pop("voxel_size"), head.pop("out_size_factor")
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope("perception3d"):
            model = MODELS.build(dict(cfg.model, bbox_head=head)).eval()
        samples = [dict(gt_bboxes_3d=box, gt_labels_3d=labels)]
        losses = model.forward(dict(points=[pts]), samples, mode="loss")
        pred = model.forward(dict(points=[pts]), [dict()], mode="predict")[0]["pred_instances_3d"]
        outs.append((losses, pred))
    (la, pa), (lb, pb) = outs
    assert la.keys() == lb.keys() and all(torch.equal(la[k], lb[k]) for k in la)
    assert all(torch.equal(pa[k], pb[k]) for k in ("bboxes_3d", "scores_3d", "labels_3d"))
    head = dict(cfg.model.bbox_head, out_size_factor=cfg.model.bbox_head["out_size_factor"] * 2)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(dict(cfg.model, bbox_head=head)).eval()
    with pytest.raises(ValueError, match="out_size_factor"):
        model.forward(dict(points=[pts]), [dict()], mode="predict")


def test_head_without_grid_or_config_says_what_is_missing():
    head = CenterHead(16, CLASSES, PCR, min_radius=1)
    preds = head(torch.zeros(1, 16, 8, 8))
    with pytest.raises(ValueError, match="no BEV grid"):
        head.predict(preds)


def test_mini_configs_grid_equals_the_cells_their_ap_was_measured_with():
    """The DSVT-P and CenterPoint mini configs no longer restate the head's stride: the grid read off the
    backbone is exactly voxel × stride of before (0.4 m × 2, 0.2 m × 4) from the range's corner."""
    from pathlib import Path
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from perception3d.registry import MODELS
    from perception3d.structures import BEVGrid
    root = Path(__file__).resolve().parents[1] / "configs"
    g = np.random.default_rng(0)
    pts = torch.from_numpy(np.c_[g.uniform(-30, 30, (2000, 2)), g.uniform(-1.5, 2, 2000),
                                 g.uniform(0, 1, (2000, 2))].astype(np.float32))
    for name, cell, hw in (("dsvt_waymo_mini.py", 0.4 * 2, 80), ("centerpoint_voxel_waymo_mini.py", 0.2 * 4, 80)):
        cfg = Config.fromfile(str(root / name))
        with DefaultScope.overwrite_default_scope("perception3d"):
            model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            _, grid = model.extract_bev([pts[:, :model.voxel_encoder.num_point_features]
                                         if hasattr(model.voxel_encoder, "num_point_features") else pts])
        assert grid == BEVGrid((cell, cell), (-32.0, -32.0), (hw, hw)), (name, grid)
