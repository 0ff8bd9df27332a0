"""Data preparation that a config can ask for before the run starts (``prepare_data = dict(type=...)``).

``prepare_waymo_mini(root, out)``: generate the built-in mini dataset at ``root`` if needed (``ensure_waymo_mini``)
and convert it (the same calls as ``tools/create_data.py waymo``, plus ``--gt-database`` when ``gt_database``, which
configs without GT sampling turn off: it costs ~20 s) unless ``<out>`` already holds a
conversion of exactly that dataset (the generator's manifest is fingerprinted into ``<out>/source_manifest.sha256``,
written last). Idempotent and cheap when the data is there; a stale conversion is redone. A lock file
(``<root>.prepare.lock``) makes processes that start together (DDP ranks, parallel runs) wait for one another
instead of converting into the same folder at once.

The generator writes with spawned worker processes, which import the calling script again as ``__mp_main__``: a
call at the top level of a script without ``if __name__ == "__main__":`` would make each worker wait for the lock
its parent holds, for ever. Such a call is a ``RuntimeError`` that says so.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS

from perception3d.datasets.det3d_dataset import create_gt_database_from_infos
from perception3d.datasets.synthetic.writer import ensure_waymo_mini
from perception3d.datasets.waymo_v2 import convert_waymo_v2
from perception3d.fileio import atomic_write_text

__all__ = ["prepare_waymo_mini", "require_prepared_data"]


@FUNCTIONS.register_module(force=True)
def prepare_waymo_mini(root: str = "data/waymo_mini", out: Optional[str] = None, gt_database: bool = True,
                       classes=("Car", "Pedestrian", "Cyclist"), surround_cameras: bool = False,
                       generator: Optional[dict] = None) -> Path:
    """``surround_cameras``: generate the dataset with the surround camera rig (its own root: the LiDAR data are
    byte-identical to the default dataset's) and convert the cameras too (``images/``, the infos' ``images``).
    ``generator``: other arguments of :func:`generate_waymo_mini` for a dataset other than the default one (e.g.
    ``dict(num_train=0, num_val=200, seed=1)``: new validation frames); a split without frames is not converted."""
    from filelock import FileLock
    if _imported_by_a_spawned_worker():
        raise RuntimeError("prepare_waymo_mini: called at the top level of a script that a spawned worker process "
                           "is importing (as __mp_main__); the data generator starts such workers, so put the call "
                           "under `if __name__ == \"__main__\":` in your script")
    root_p = Path(root).resolve()
    out_p = Path(out).resolve() if out else root_p / "processed"
    root_p.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root_p) + ".prepare.lock"):
        extra = dict(surround_cameras=True) if surround_cameras else {}   # the default call keeps its 4 arguments
        if generator:
            extra["generator"] = dict(generator)
        return _prepare_waymo_mini_locked(root_p, out_p, gt_database, classes, **extra)


def _imported_by_a_spawned_worker() -> bool:
    """True when the caller is the top level of the main script being re-imported by a spawned worker process
    (``__name__ == "__mp_main__"``); a worker's target function calling in (DDP ranks) is not."""
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_name == "<module>" and f.f_globals.get("__name__") == "__mp_main__":
            return True
        f = f.f_back
    return False


def _prepare_waymo_mini_locked(root_p: Path, out_p: Path, gt_database: bool, classes,
                               surround_cameras: bool = False, generator: Optional[dict] = None) -> Path:
    gen = dict(generator or {}, **(dict(surround_cameras=True) if surround_cameras else {}))
    splits = ["train", "val"] if gen.get("num_train", 1) else ["val"]
    gt_database = gt_database and "train" in splits
    need = [out_p / f"waymo_infos_{split}.pkl" for split in splits]
    ensure_waymo_mini(root_p, **gen)
    manifest = root_p / "waymo_mini_manifest.json"
    fingerprint = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else "none"
    marker = out_p / "source_manifest.sha256"
    if all(p.is_file() for p in need) and marker.is_file() and marker.read_text().strip() == fingerprint:
        if gt_database and not (out_p / "waymo_dbinfos_train.pkl").is_file():   # converted without the database
            _gt_database(out_p, classes)
        return out_p
    if out_p.exists():
        print_log(f"prepare_waymo_mini: {out_p} was converted from another version of the data; converting again",
                  logger="current")
        for child in out_p.iterdir():          # only what a conversion writes; anything else is left alone
            if child.name in ("points", "waymo_gt_database", "images"):
                shutil.rmtree(child)
            elif child.name.startswith(("waymo_infos_", "waymo_dbinfos_", "source_manifest")):
                child.unlink()
    print_log(f"prepare_waymo_mini: converting the mini dataset at {root_p} → {out_p} (first run only)",
              logger="current")
    result = convert_waymo_v2(root_p, out_p, splits=splits, cameras=surround_cameras)
    print_log(f"prepare_waymo_mini: converted; bad frames left out: {len(result.get('bad', []))}", logger="current")
    if gt_database:
        _gt_database(out_p, classes)
    atomic_write_text(marker, fingerprint)
    return out_p


def _gt_database(out_p: Path, classes) -> None:
    """The GT-sampling database of the converted train split (``waymo_gt_database/``, ``waymo_dbinfos_train.pkl``)."""
    create_gt_database_from_infos(out_p / "waymo_infos_train.pkl", out_p, out_p, "waymo", classes=classes,
                                  load_dim=6, use_dim=5)


@FUNCTIONS.register_module(force=True)
def require_prepared_data(data_root: str, files: Sequence[str], how: str, mini_config: Optional[str] = None) -> None:
    """``prepare_data`` of configs on real datasets (e.g. ``configs/dsvt_waymo.py``): stop at once, before anything
    is built, saying how to prepare the data and which config runs without it, when a prepared file is missing."""
    missing = [f for f in files if not (Path(data_root) / f).is_file()]
    if missing:
        hint = f"; or train on the built-in mini dataset: python tools/train.py {mini_config}" if mini_config else ""
        raise FileNotFoundError(f"{Path(data_root) / missing[0]} not found ({len(missing)} of {len(files)} "
                                f"prepared files missing). Prepare Waymo first: {how}{hint}")
