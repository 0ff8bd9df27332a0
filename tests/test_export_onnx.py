"""tools/export_onnx.py: the whole DSVT backbone (partition included) exports with a dynamic voxel count and no
custom op; onnxruntime equals PyTorch (≤ 1e-4) on two frames with different voxel counts."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from perception3d.models.backbones.dsvt import DSVT

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _tool():
    spec = importlib.util.spec_from_file_location("export_onnx", ROOT / "tools" / "export_onnx.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SMALL = {
    "plain": dict(grid_size=(60, 60, 1), window_shape=[[12, 12, 1]], set_info=[[36, 2]], d_model=[32], nhead=[4],
                  dim_feedforward=[64], shifts_list=[[[0, 0, 0], [6, 6, 0]]]),
    "voxel": dict(grid_size=(48, 48, 8), window_shape=[[12, 12, 8], [12, 12, 2], [12, 12, 1]],
                  set_info=[[48, 1]] * 3, d_model=[32] * 3, nhead=[4] * 3, dim_feedforward=[64] * 3,
                  shifts_list=[[[0, 0, 0], [6, 6, 0]]] * 3, downsample_stride=[[1, 1, 4], [1, 1, 2]]),
}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_onnx_equals_pytorch_on_two_voxel_counts(kind, tmp_path):
    tool = _tool()
    torch.manual_seed(0)
    backbone = DSVT(**SMALL[kind]).eval()
    with torch.no_grad():   # non-trivial BN statistics in the position embeddings
        for m in backbone.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    path = tool.export(backbone, str(tmp_path / "dsvt.onnx"), example_voxels=500)
    graph = onnx.load(path).graph
    ops = {n.op_type for n in graph.node}
    assert all(n.domain in ("", "ai.onnx") for n in graph.node), "custom op in graph"
    assert "TopK" in ops and "ScatterElements" in ops          # the partition is inside the graph
    err = tool.check(backbone, path, sizes=(300, 800))
    assert err <= 1e-4


def test_export_cli_rejects_missing_checkpoint(tmp_path):
    tool = _tool()
    with pytest.raises(FileNotFoundError, match="no such file"):
        tool.main([str(ROOT / "configs" / "dsvt_waymo.py"), str(tmp_path / "nope.pth"), "--out",
                   str(tmp_path / "x.onnx")])


@pytest.mark.slow
@pytest.mark.parametrize("cfg", ["dsvt_waymo.py", "dsvt_voxel_waymo.py"])
def test_export_waymo_configs(cfg, tmp_path, capsys):
    tool = _tool()
    tool.main([str(ROOT / "configs" / cfg), "none", "--out", str(tmp_path / "b.onnx"), "--check"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert float(line.rsplit(" ", 1)[1]) <= 1e-4
