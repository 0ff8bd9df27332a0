"""Data preparation that a config can ask for before the run starts (``prepare_data = dict(type=...)``).

``prepare_waymo_mini(root, out)``: when ``<out>/waymo_infos_{train,val}.pkl`` are missing, generate the built-in
mini dataset at ``root`` (``ensure_waymo_mini``) and convert it (the same calls as ``tools/create_data.py waymo
--gt-database``). Idempotent and cheap when the data is there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS

__all__ = ["prepare_waymo_mini"]


@FUNCTIONS.register_module(force=True)
def prepare_waymo_mini(root: str = "data/waymo_mini", out: Optional[str] = None, gt_database: bool = True,
                       classes=("Car", "Pedestrian", "Cyclist")) -> Path:
    from perception3d.datasets import ensure_waymo_mini
    from perception3d.datasets.waymo_v2 import convert_waymo_v2
    root_p = Path(root).resolve()
    out_p = Path(out).resolve() if out else root_p / "processed"
    need = [out_p / "waymo_infos_train.pkl", out_p / "waymo_infos_val.pkl"]
    if gt_database:
        need.append(out_p / "waymo_dbinfos_train.pkl")
    if all(p.is_file() for p in need):
        return out_p
    print_log(f"prepare_waymo_mini: preparing the mini dataset at {root_p} → {out_p} (first run only)",
              logger="current")
    ensure_waymo_mini(root_p)
    result = convert_waymo_v2(root_p, out_p, splits=["train", "val"])
    print_log(f"prepare_waymo_mini: converted; bad frames left out: {len(result.get('bad', []))}", logger="current")
    if gt_database:
        from perception3d.datasets.det3d_dataset import create_gt_database_from_infos
        create_gt_database_from_infos(out_p / "waymo_infos_train.pkl", out_p, out_p, "waymo", classes=classes,
                                      load_dim=6, use_dim=5)
    return out_p
