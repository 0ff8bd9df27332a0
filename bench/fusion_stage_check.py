"""Checks of the two-stage recipe on real checkpoints: the fusion-stage model loads every tensor of the LiDAR-only
(stage-1) checkpoint, and, given the fusion-stage checkpoint, its LiDAR part (parameters and BatchNorm statistics)
is bit-identical to stage 1's.

    python bench/fusion_stage_check.py configs/sparsefusion_waymo_mini_stage2.py STAGE1.pth [STAGE2.pth]
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

LIDAR = ("voxel_encoder.", "backbone_3d.", "map_to_bev.", "backbone_2d.", "head.lidar.")


def _state(path: str) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt.get("state_dict", ckpt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("stage1")
    ap.add_argument("stage2", nargs="?")
    args = ap.parse_args()
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import load_state_dict

    import perception3d.models  # noqa: F401
    from perception3d.cli import load_config
    from perception3d.registry import MODELS

    cfg = load_config(args.config)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    s1 = _state(args.stage1)
    load_state_dict(model, dict(s1), strict=False)       # mmengine's loader, as ``load_from`` runs it
    sd = model.state_dict()
    unexpected = [k for k in s1 if k not in sd]
    loaded_lidar = [k for k in sd if k.startswith(LIDAR)]
    missing = [k for k in sd if k not in s1 and not (k.startswith(("head.fusion_heads.", "head.proj_lidar.proj."))
                                                  and getattr(model.head, "fusion_initialised_from_lidar", False))]
    lidar_missing = [k for k in missing if k.startswith(LIDAR)]
    same = sum(torch.equal(sd[k], s1[k]) for k in s1 if k in sd)
    print(f"stage-1 tensors: {len(s1)}; loaded unchanged: {same}; unexpected: {len(unexpected)}; "
          f"LiDAR tensors in the fusion model: {len(loaded_lidar)}, missing from stage 1: {len(lidar_missing)}")
    by_module = Counter(".".join(k.split(".")[:2]) if k.startswith("head.") else k.split(".")[0] for k in missing)
    print(f"fusion-model tensors not in stage 1 (trained in stage 2): {len(missing)}, by module: {dict(by_module)}")
    print(f"fusion heads / proj_lidar started from the LiDAR heads: "
          f"{getattr(model.head, 'fusion_initialised_from_lidar', False)}")
    trainable_lidar = [n for n, p in model.named_parameters() if n.startswith(LIDAR) and p.requires_grad]
    print(f"LiDAR parameters with requires_grad: {len(trainable_lidar)}")
    ok = not unexpected and not lidar_missing and same == len(s1)
    if args.stage2:
        s2 = _state(args.stage2)
        keys = [k for k in s1 if k.startswith(LIDAR)]
        changed = [k for k in keys if not torch.equal(s1[k], s2[k])]
        print(f"stage 2 vs stage 1: {len(keys)} LiDAR tensors (parameters + BN statistics), changed: {len(changed)}"
              + (f" e.g. {changed[:5]}" if changed else ""))
        ok = ok and not changed
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
