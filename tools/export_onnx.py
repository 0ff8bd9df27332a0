"""Export a detector's 3D backbone (DSVT) to ONNX, with dynamic voxel counts and no custom op.

    python tools/export_onnx.py CONFIG CKPT [--out dsvt.onnx] [--opset 17] [--check]

The graph is the whole backbone: window partition, dynamic set partition (Eq. 3) with rotated sets, every
set-attention block, the attention pooling of DSVT-V, and the position embeddings — the partition indices are
computed inside the graph with plain ops (sort, cumsum, scatter, gather), so onnxruntime / TensorRT need no plugin.

Inputs:  ``voxel_feats`` float32 [N, C] (the voxel encoder's output), ``voxel_coords`` int64 [N, 4] (b, z, y, x).
Outputs: ``feats`` float32 [M, C] and ``coords`` int64 [M, 4] of the last stage (M = N for DSVT-P).
``CKPT`` may be ``none`` (random weights, for a smoke test). ``--check`` runs onnxruntime on two synthetic
frames with different voxel counts and prints the largest difference to PyTorch.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402


class BackboneForExport(nn.Module):
    """(voxel feats [N, C], coords [N, 4]) → (feats [M, C], coords [M, 4]) through ``backbone.forward_tensors``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        if not hasattr(backbone, "forward_tensors"):
            raise TypeError(f"export_onnx: {type(backbone).__name__} has no forward_tensors(feats, coords); "
                            f"only DSVT backbones are exportable")
        self.backbone = backbone

    def forward(self, feats: torch.Tensor, coords: torch.Tensor):
        return self.backbone.forward_tensors(feats, coords)


def build_backbone(config: str, ckpt: str | None) -> nn.Module:
    """Build the config's model, load ``ckpt`` (mmengine checkpoint or bare state dict), return its backbone_3d."""
    from mmengine.registry import init_default_scope

    import perception3d.models  # noqa: F401  (registration)
    from perception3d.registry import MODELS
    from perception3d.cli import check_checkpoint, load_config
    cfg = load_config(config)
    if ckpt and ckpt.lower() != "none":
        check_checkpoint(ckpt)
    init_default_scope(cfg.get("default_scope", "perception3d"))
    model = MODELS.build(cfg.model)
    if ckpt and ckpt.lower() != "none":
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing:
            raise KeyError(f"export_onnx: checkpoint {ckpt} lacks {len(missing)} weights, e.g. {missing[:3]}")
    backbone = getattr(model, "backbone_3d", None)
    if backbone is None:
        raise ValueError(f"export_onnx: the model of {config} has no backbone_3d")
    return backbone.eval()


def synthetic_frame(backbone: nn.Module, num_voxels: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A frame of ``num_voxels`` distinct voxels on the backbone's grid (LiDAR-like: denser near the centre)."""
    gx, gy, gz = backbone.grid_size
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(num_voxels * 3, generator=g).sqrt() * 0.5
    a = torch.rand(num_voxels * 3, generator=g) * 6.2832
    x = ((0.5 + r * torch.cos(a)) * gx).long().clamp(0, gx - 1)
    y = ((0.5 + r * torch.sin(a)) * gy).long().clamp(0, gy - 1)
    z = torch.randint(0, gz, (num_voxels * 3,), generator=g)
    key = torch.unique((z * gy + y) * gx + x)
    key = key[torch.randperm(len(key), generator=g)[:num_voxels]]
    coords = torch.stack([torch.zeros_like(key), key // (gx * gy), (key // gx) % gy, key % gx], 1)
    feats = torch.randn(len(key), backbone.in_channels, generator=g)
    return feats, coords


def export(backbone: nn.Module, out: str, opset: int = 17, example_voxels: int = 2000) -> str:
    """Trace ``backbone`` into ``out`` (dynamic N), written atomically. Returns the path."""
    wrapper = BackboneForExport(backbone).eval()
    feats, coords = synthetic_frame(backbone, example_voxels)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (feats, coords), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["voxel_feats", "voxel_coords"], output_names=["feats", "coords"],
                          dynamic_axes={"voxel_feats": {0: "num_voxels"}, "voxel_coords": {0: "num_voxels"},
                                        "feats": {0: "num_out"}, "coords": {0: "num_out"}})
    wrapper.eval()   # the exporter restores the module's previous mode; keep eval for later comparisons
    os.replace(tmp, out_path)
    return str(out_path)


def check(backbone: nn.Module, onnx_path: str, sizes=(1500, 2600)) -> float:
    """Max |onnxruntime − PyTorch| over frames of the given voxel counts (also checks output coords are equal)."""
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, n in enumerate(sizes):
        feats, coords = synthetic_frame(backbone, n, seed=100 + i)
        with torch.no_grad():
            ref_f, ref_c = backbone.forward_tensors(feats, coords)
        got_f, got_c = sess.run(None, {"voxel_feats": feats.numpy(), "voxel_coords": coords.numpy()})
        if got_f.shape != tuple(ref_f.shape) or not np.array_equal(got_c, ref_c.numpy()):
            raise AssertionError(f"export_onnx: onnxruntime output shape/coords differ on a {n}-voxel frame")
        worst = max(worst, float(np.abs(got_f - ref_f.numpy()).max()))
    return worst


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Export a DSVT backbone to ONNX (dynamic voxel count, no custom op)")
    p.add_argument("config")
    p.add_argument("ckpt", help="checkpoint path, or 'none' for random weights")
    p.add_argument("--out", help="output .onnx (default: work_dirs/<config name>/backbone.onnx)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--check", action="store_true", help="compare onnxruntime with PyTorch on two frames")
    args = p.parse_args(argv)
    out = args.out or str(Path("work_dirs") / Path(args.config).stem / "backbone.onnx")
    backbone = build_backbone(args.config, args.ckpt)
    path = export(backbone, out, args.opset)
    print(f"wrote {path}")
    if args.check:
        print(f"onnxruntime vs PyTorch, max abs difference on 2 frames: {check(backbone, path):.3e}")


if __name__ == "__main__":
    from perception3d.cli import run_cli
    run_cli(main)
