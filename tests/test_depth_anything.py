"""Depth Anything built from the papers (``rendering.priors.depth_anything``): the network has the released
models' sizes and parameter names, runs as a depth prior from a local checkpoint (as the authors' CoherentGS
data preparation turns its output into depth), and refuses checkpoints it cannot load. Parity with the authors'
code, same weights: ``bench/learned_prior_parity.py --model depth_anything`` (it needs their repository)."""

from pathlib import Path

import pytest
import torch

from perception3d.rendering.priors import build_depth_prior
from perception3d.rendering.priors.depth_anything import (DepthAnythingDepth, DepthAnythingNet, encoder_of,
                                                           network_size)


def random_weights_(net: torch.nn.Module) -> torch.nn.Module:
    """Random weights that move every part, biases too (the networks' own init leaves heads near zero)."""
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.02 if p.dim() > 1 else 0.1)
    return net


@pytest.fixture(scope="module")
def vits_checkpoint(tmp_path_factory):
    """Random ViT-S weights in the released file's layout, with an output above the final ReLU's zero."""
    torch.manual_seed(0)
    net = random_weights_(DepthAnythingNet("vits"))
    with torch.no_grad():
        net.depth_head.scratch.output_conv2[2].bias.fill_(1.0)
    path = tmp_path_factory.mktemp("da") / "depth_anything_v2_vits.pth"
    torch.save(net.state_dict(), path)
    return path, net.eval()


class _Scene:
    """The part of a Scene a monocular prior reads."""

    def __init__(self, images):
        self.images = images
        self.height, self.width = images[0].shape[:2]

    def image(self, i):
        return self.images[i]


def test_sizes_and_parameter_names_are_the_released_models():
    sizes = {}
    for enc in ("vits", "vitb", "vitl"):
        with torch.device("meta"):
            net = DepthAnythingNet(enc)
        sizes[enc] = round(sum(p.numel() for p in net.parameters()) / 1e6, 1)
    assert sizes == {"vits": 24.8, "vitb": 97.5, "vitl": 335.3}  # the authors' README
    with torch.device("meta"):
        v2, v1 = DepthAnythingNet("vitl", version=2), DepthAnythingNet("vitl", version=1)
    assert v2.blocks_read == (4, 11, 17, 23) and v1.blocks_read == (20, 21, 22, 23)  # v1 read the last four
    keys = set(v2.state_dict())
    for k in ("pretrained.pos_embed", "pretrained.mask_token", "pretrained.blocks.23.ls2.gamma",
              "pretrained.blocks.0.attn.qkv.weight", "depth_head.resize_layers.3.weight",
              "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight", "depth_head.scratch.output_conv2.2.bias"):
        assert k in keys, k
    assert tuple(v2.state_dict()["pretrained.pos_embed"].shape) == (1, 37 * 37 + 1, 1024)
    assert encoder_of({"pretrained.cls_token": torch.zeros(1, 1, 768)}) == "vitb"


def test_input_size_is_the_authors_lower_bound_at_multiples_of_14():
    assert network_size(400, 400) == (518, 518)
    assert network_size(683, 384) == (924, 518)  # 518 × 683 / 384 = 921.3 → 924
    assert network_size(288, 512) == (518, 924)
    with pytest.raises(ValueError, match="not a multiple of 14"):
        DepthAnythingNet("vits")(torch.zeros(1, 3, 100, 112))


def test_prior_runs_from_a_local_checkpoint(vits_checkpoint):
    path, net = vits_checkpoint
    prior = build_depth_prior({"type": "depth_anything", "checkpoint": str(path)})
    assert isinstance(prior, DepthAnythingDepth)
    assert prior.describe() == {"type": "depth_anything", "metric": False, "encoder": "vits", "version": 2,
                                "input_size": 518, "weights": str(path)}
    g = torch.Generator().manual_seed(1)
    img = torch.rand(60, 80, 3, generator=g)
    dm = prior.estimate(_Scene([img]), 0)
    assert dm.depth.shape == (60, 80) and not dm.metric and dm.source == "depth_anything_v2_vits"
    # the authors' preparation: depth = 1 / (disparity / max + 0.2) ∈ [1 / 1.2, 5], the nearest pixel at 1 / 1.2
    disp = prior.disparity(img)
    assert torch.allclose(dm.depth, 1.0 / (disp / disp.max() + 0.2))
    assert float(dm.depth.min()) == pytest.approx(1 / 1.2, rel=1e-5) and float(dm.depth.max()) <= 5.0
    # the network saw the image at 518 × 686 (aspect kept, multiples of 14), normalised with ImageNet statistics
    import cv2

    x = cv2.resize(img.numpy(), (686, 518), interpolation=cv2.INTER_CUBIC)
    x = (torch.from_numpy(x) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        direct = net(x.permute(2, 0, 1)[None])
    back = torch.nn.functional.interpolate(direct[:, None], (60, 80), mode="bilinear", align_corners=True)[0, 0]
    assert torch.allclose(disp, back, atol=1e-6)
    assert build_depth_prior({"type": "depth_anything", "checkpoint": str(path),
                              "version": 1}).net.blocks_read == (8, 9, 10, 11)


def test_checkpoints_it_cannot_load_are_refused_by_name(vits_checkpoint, tmp_path):
    path, net = vits_checkpoint
    sd = net.state_dict()
    cut = tmp_path / "cut.pth"
    torch.save({k: v for k, v in sd.items() if not k.startswith("depth_head.scratch.refinenet1")}, cut)
    with pytest.raises(ValueError, match=r"cut.pth: not a Depth Anything vits checkpoint.*missing"):
        build_depth_prior({"type": "depth_anything", "checkpoint": str(cut)})
    with pytest.raises(ValueError, match="bad options"):
        build_depth_prior({"type": "depth_anything", "checkpoint": str(path), "encoder": "vitl"})
    with pytest.raises(ValueError, match="version must be 1 or 2"):
        build_depth_prior({"type": "depth_anything", "checkpoint": str(path), "version": 3})
    other = tmp_path / "raft.pth"
    torch.save({"fnet.conv1.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match=r"raft.pth: does not hold Depth Anything"):
        build_depth_prior({"type": "depth_anything", "checkpoint": str(other)})


def test_coherentgs_aligns_it_and_records_it(vits_checkpoint, tmp_path):
    """CoherentGS with Depth Anything (the authors' prior) on 3 lego views: the relative depth is put in scene
    units by the triangulated features and then aligned by the flow loss, as the authors align theirs; training
    runs, and metrics.json and the checkpoint say which prior ran, with its weights."""
    import json

    from perception3d.cli import load_config
    from perception3d.registry import RENDER_METHODS

    lego = Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf_synthetic_lego"
    if not lego.exists():
        pytest.skip(f"real sample data not found at {lego}")
    path, _ = vits_checkpoint
    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs" / "coherentgs_lego.py"))
    cfg.merge_from_dict({"data.root": str(lego / "nerf_synthetic" / "lego"), "data.size": (200, 200),
                         "train.max_cpu_minutes": None, "train.max_steps": 2, "train.align_steps": 5})
    cfg.model["depth_prior"] = dict(type="depth_anything", checkpoint=str(path))
    tr = RENDER_METHODS.get("coherentgs")(cfg, tmp_path / "work", progress=False)
    res = tr.train()
    assert res["steps"] == 2 and tr.align_stats["steps"] == 5 and not tr.align_stats["metric_depth"]
    assert [r["source"] for r in tr.priors["depth_views"]] == ["depth_anything_v2_vits"] * 3
    # views 6 and 11 are put in scene units by their triangulated features; view 0 has 4, too few for a fit, and
    # starts at the scene's typical depth (the flow alignment then fits every view's scale and offset)
    anchors = [r["anchors"] for r in tr.priors["depth_views"]]
    assert anchors[0] < 10 <= min(anchors[1:]), anchors
    saved = json.loads((tmp_path / "work" / "metrics.json").read_text())["priors"]["depth"]
    ck = torch.load(tmp_path / "work" / "ckpt_latest.pt", map_location="cpu", weights_only=False)
    assert saved["weights"] == ck["priors"]["depth"]["weights"] == str(path)
