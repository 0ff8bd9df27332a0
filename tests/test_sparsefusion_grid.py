"""SparseFusion's head reads the BEV map's cell size off the LiDAR sparse tensor (structures.BEVGrid), as
CenterHead does: the tiny model gives the same outputs, losses and boxes as the head that was told
``voxel_size × out_size_factor`` (``fixtures/sparsefusion_tiny_outputs.pt``, saved before the change), with the
restated values or without them; a restated value that disagrees with the grid is an error naming it. "The same" is
to float32 rounding (1e-5; labels exactly): the fixture was saved on an AMD CPU, and on an Intel one the kernels
round the last bits differently (up to 2e-6 here), while a wrong cell size moves the centres by metres."""
import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perception3d.models  # noqa: F401,E402  (registration)
from perception3d.registry import MODELS  # noqa: E402
from _sparsefusion_tiny import tiny_cfg  # noqa: E402
from fixtures.make_sparsefusion_outputs import outputs  # noqa: E402  (the fixture's own build and batch)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sparsefusion_tiny_outputs.pt"


@pytest.fixture(autouse=True)
def one_thread():
    """The fixture was made on one thread; with more, oneDNN's convolutions split their sums differently."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _without_geometry(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg["head"].pop("voxel_size")
    cfg["head"].pop("out_size_factor")
    return cfg


@pytest.mark.parametrize("backbone,cell", [("resnet", 2.0), ("dsvt", 1.0)])
@pytest.mark.parametrize("restated", [True, False])
def test_outputs_equal_to_the_restated_head(backbone, cell, restated):
    want = torch.load(FIXTURE, map_location="cpu", weights_only=False)[backbone]
    cfg = tiny_cfg(backbone=backbone)
    cfg["head"]["query_score_decoding"] = False   # the fixture's boxes were decoded by σ(logit) alone
    model, got = outputs(cfg if restated else _without_geometry(cfg))
    assert model.head.cell == [cell, cell]
    same = dict(rtol=1e-5, atol=1e-5)   # integer tensors (the labels) are compared exactly
    for k, v in want["final"].items():
        torch.testing.assert_close(got["final"][k], v, **same, msg=f"{backbone}: final {k}")
    for k, v in want["losses"].items():
        torch.testing.assert_close(got["losses"][k], v, **same, msg=f"{backbone}: {k}")
    for got, exp in zip(got["preds"], want["preds"]):
        for k, v in exp.items():
            torch.testing.assert_close(got[k], v, **same, msg=f"{backbone}: predicted {k}")


def test_restated_value_is_checked_against_the_grid():
    cfg = tiny_cfg()
    cfg["head"]["out_size_factor"] = 8                    # 4 m cells restated; the backbone makes 2 m cells
    with pytest.raises(ValueError, match="out_size_factor"):
        outputs(cfg)
    cfg = tiny_cfg()
    cfg["head"]["pc_range"] = [-7.0] + list(cfg["head"]["pc_range"][1:])
    with pytest.raises(ValueError, match="origin"):
        outputs(cfg)


def test_head_alone_needs_geometry():
    cfg = _without_geometry(tiny_cfg(use_camera=False))
    head = MODELS.build(cfg["head"])
    with pytest.raises(ValueError, match="no BEV grid"):
        head(torch.zeros(1, 32, 8, 8))
