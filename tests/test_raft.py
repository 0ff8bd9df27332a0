"""RAFT built from the paper (``rendering.priors.raft``): the released model's size and parameter names, the
convex upsampling by hand, the prior's padding to multiples of 8, and checkpoints it refuses. Parity with the
authors' code, same weights: ``bench/learned_prior_parity.py --model raft`` (it needs their repository)."""

import numpy as np
import pytest
import torch
from test_depth_anything import random_weights_

from perception3d.rendering.priors import build_flow_prior
from perception3d.rendering.priors.raft import RAFTFlow, RAFTNet


@pytest.fixture(scope="module")
def raft_checkpoint(tmp_path_factory):
    """Random weights in the released file's layout (DataParallel's ``module.`` prefix, as raft-things.pth)."""
    torch.manual_seed(0)
    net = random_weights_(RAFTNet())
    path = tmp_path_factory.mktemp("raft") / "raft-things.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)
    return path, net.eval()


def test_size_and_parameter_names_are_the_released_model():
    net = RAFTNet()
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == 5.3  # the paper's 5.3 M
    keys = set(net.state_dict())
    for k in ("fnet.layer2.0.downsample.0.weight", "cnet.layer2.0.norm3.running_var",
              "cnet.layer2.0.downsample.1.running_var", "update_block.gru.convq2.weight",
              "update_block.encoder.convc1.weight", "update_block.mask.2.bias", "update_block.flow_head.conv2.bias"):
        assert k in keys, k
    assert not any(k.startswith("fnet.norm1") for k in keys)  # instance norm: no parameters


def test_convex_upsampling_of_a_constant_flow_by_hand():
    """Uniform weights (a zero mask) over the 3 × 3 neighbours of a constant coarse flow f give 8 f inside."""
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0], flow[:, 1] = 1.5, -0.5
    up = RAFTNet.upsample(flow, torch.zeros(1, 9 * 64, 4, 5))
    assert up.shape == (1, 2, 32, 40)
    inner = up[:, :, 8:24, 8:32]
    assert torch.allclose(inner[:, 0], torch.full_like(inner[:, 0], 12.0)) and torch.allclose(
        inner[:, 1], torch.full_like(inner[:, 1], -4.0))


def test_prior_pads_to_multiples_of_8_and_crops_back(raft_checkpoint):
    path, net = raft_checkpoint
    prior = build_flow_prior({"type": "raft", "checkpoint": str(path), "iters": 3})
    assert isinstance(prior, RAFTFlow) and prior.describe() == {"type": "raft", "iters": 3, "weights": str(path)}
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(130, 150, 3, generator=g), torch.rand(130, 150, 3, generator=g)
    f = prior.flow(a, b)
    assert f.shape == (130, 150, 2) and f.dtype == torch.float32 and torch.isfinite(f).all()
    # by hand: replicate-pad 130 × 150 to 136 × 152 (3 rows above and below, 1 column each side), run, crop
    pad = lambda t: torch.nn.functional.pad(t.permute(2, 0, 1)[None] * 255, [1, 1, 3, 3], mode="replicate")
    with torch.no_grad():
        direct = net(pad(a), pad(b), iters=3)[0, :, 3:133, 1:151].permute(1, 2, 0)
    assert torch.allclose(f, direct, atol=1e-5)
    # uint8 images are read as 0…255
    u8 = [(t.numpy() * 255).round().astype(np.uint8) for t in (a, b)]
    assert torch.allclose(prior.flow(*u8), prior.flow(*(torch.from_numpy(x).float() / 255 for x in u8)),
                          atol=1e-4)


def test_checkpoints_it_cannot_load_are_refused_by_name(raft_checkpoint, tmp_path):
    path, net = raft_checkpoint
    sd = net.state_dict()
    small = tmp_path / "raft-small.pth"
    torch.save({**sd, "fnet.conv2.weight": torch.zeros(128, 96, 1, 1)}, small)
    with pytest.raises(ValueError, match="raft-small.pth: a RAFT-small checkpoint"):
        build_flow_prior({"type": "raft", "checkpoint": str(small)})
    cut = tmp_path / "cut.pth"
    torch.save({k: v for k, v in sd.items() if "gru" not in k}, cut)
    with pytest.raises(ValueError, match=r"cut.pth: not a RAFT checkpoint as released.*missing"):
        build_flow_prior({"type": "raft", "checkpoint": str(cut)})
    with pytest.raises(ValueError, match="iters must be >= 1"):
        build_flow_prior({"type": "raft", "checkpoint": str(path), "iters": 0})
    with pytest.raises(ValueError, match="bad options"):
        build_flow_prior({"type": "raft", "checkpoint": str(path), "small": True})
    with pytest.raises(ValueError, match=r"\(64, 96\) is below 128 px"):  # its 1/64 level would be 1 cell wide
        RAFTFlow(net.state_dict()).flow(torch.rand(60, 90, 3), torch.rand(60, 90, 3))
