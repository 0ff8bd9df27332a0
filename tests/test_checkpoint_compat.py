"""Checkpoints written by an earlier version of the package load into today's classes and give the same outputs.

The fixture (``tests/fixtures/compat_checkpoints.pt``, made by ``tests/fixtures/make_compat_checkpoints.py`` at
the commit it records) holds a tiny CenterPoint-Voxel, a tiny DSVT-V (DynamicVoxelPFN + 3-D DSVT) and a tiny
3DGS scene, with the outputs those models gave on fixed inputs when they were saved. A module move or rename
that changes a state-dict key, a registry name or a layer's arithmetic fails here.
"""
import copy
from pathlib import Path

import pytest
import torch

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compat_checkpoints.pt"


@pytest.fixture(scope="module")
def fixture():
    return torch.load(FIXTURE, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("name", ["centerpoint_voxel_tiny", "dsvt_voxel_tiny"])
def test_detector_checkpoint_loads_and_gives_same_outputs(fixture, name, tmp_path):
    from mmengine.registry import DefaultScope

    import perception3d.models  # noqa: F401  (registration)
    from perception3d.engine import load_state_dict_strict
    from perception3d.registry import MODELS

    rec = fixture["detectors"][name]
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(copy.deepcopy(rec["model_cfg"]))
    path = tmp_path / "epoch_1.pth"
    torch.save(rec["checkpoint"], path)
    load_state_dict_strict(model, str(path))     # KeyError naming any missing / unexpected / reshaped key
    assert list(model.state_dict()) == list(rec["checkpoint"]["state_dict"])
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=dict(points=rec["points"]), data_samples=None), False)
        outs = model(data["inputs"], None, mode="tensor")
    assert len(outs) == len(rec["outputs"])
    for got, want in zip(outs, rec["outputs"]):
        assert sorted(got) == sorted(want)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=f"{name}: head output {k}")


def test_gaussian_checkpoint_and_ply_load_and_render_the_same(fixture, tmp_path):
    from perception3d.rendering.gaussians import GaussianModel
    from perception3d.rendering.trainer import load_model

    rec = fixture["gaussians"]
    ck = tmp_path / "ckpt.pt"
    torch.save(rec["checkpoint"], ck)
    ply = tmp_path / "point_cloud.ply"
    ply.write_bytes(rec["ply"])
    from_ckpt, cfg = load_model(ck)
    assert cfg == rec["checkpoint"]["config"]
    for model in (from_ckpt, GaussianModel.load_ply(ply), load_model(ply)[0]):
        assert model.sh_degree == rec["checkpoint"]["sh_degree"]
        for k, v in rec["checkpoint"]["params"].items():
            torch.testing.assert_close(model.params[k].detach(), v, rtol=0, atol=0, msg=f"param {k}")
        cam = rec["camera"]
        with torch.no_grad():
            colors, alphas, _ = model.render(cam["viewmat"], cam["K"], cam["width"], cam["height"],
                                             background=torch.zeros(3))
        torch.testing.assert_close(colors, rec["colors"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(alphas, rec["alphas"], rtol=1e-5, atol=1e-6)
    # the PLY written today is byte-identical to the one written when the fixture was made
    out = tmp_path / "again.ply"
    from_ckpt.save_ply(out)
    assert out.read_bytes() == rec["ply"]
