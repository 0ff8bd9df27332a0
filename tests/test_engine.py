"""Engine unit tests: atomic checkpoint writes, newest-checkpoint search, strict key checks, the resumable
sampler, per-sample seeding and bad-frame counting, config-option key checks, collate / preprocessing."""
import os
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config

from perception3d.datasets.loading import ResumableSampler, SeededDataset, det3d_collate
from perception3d.engine import AtomicLocalBackend, check_state_dict_keys, find_latest_checkpoint, merge_cfg_options
from perception3d.fileio import atomic_write_bytes
from perception3d.models.data_preprocessor import Det3DDataPreprocessor


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "iter_3.pth"
    atomic_write_bytes(path, b"old")
    def boom(*a, **k):
        raise KeyboardInterrupt("killed between write and rename")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new" * 1000)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_3.pth"]  # no temp file left behind
    monkeypatch.undo()
    AtomicLocalBackend().put_text("x", tmp_path / "last_checkpoint")
    assert (tmp_path / "last_checkpoint").read_text() == "x"


def test_find_latest_checkpoint_skips_torn_files(tmp_path):
    for it in (3, 6):
        torch.save(dict(meta=dict(iter=it), state_dict={}), tmp_path / f"iter_{it}.pth")
    (tmp_path / "iter_9.pth").write_bytes(b"\x80\x02truncated")  # a torn write (not made by our backend)
    assert find_latest_checkpoint(str(tmp_path)).endswith("iter_6.pth")
    assert find_latest_checkpoint(str(tmp_path / "nothing")) is None


def test_check_state_dict_keys_names_missing_and_unexpected():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    sd = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(3), "head.weight": torch.zeros(1)}
    with pytest.raises(KeyError, match=r"missing keys \(2\).*1\.weight.*unexpected keys \(1\).*head\.weight"):
        check_state_dict_keys(model, sd)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["0.weight"] = torch.zeros(4, 2)
    with pytest.raises(KeyError, match=r"shape mismatch.*0\.weight"):
        check_state_dict_keys(model, sd)
    check_state_dict_keys(model, model.state_dict())


class _Items:
    metainfo = dict(classes=("a",))

    def __init__(self, n=10, bad=()):
        self.n, self.bad = n, set(bad)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i in self.bad:
            raise OSError(f"bad {i}")
        return dict(inputs=dict(points=torch.full((2, 3), float(i))),
                    data_samples=dict(i=i, r=np.random.rand(), p=random.random(), t=float(torch.rand(1))))


def test_resumable_sampler_skips_and_encodes_epoch():
    ds = _Items(10)
    s = ResumableSampler(ds, shuffle=True, seed=1)
    s.set_epoch(2)
    full = list(s)
    assert sorted(i - 20 for i in full) == list(range(10))  # epoch 2 → indices 20..29
    s.set_start(4)
    assert list(s) == full[4:]
    assert list(s) == full  # set_start applies once
    s.set_epoch(3)
    assert [i - 30 for i in s] != [i - 20 for i in full]  # a new permutation per epoch


def test_seeded_dataset_is_a_function_of_seed_epoch_index_and_counts_bad_frames():
    ds = SeededDataset(_Items(10, bad={3}), seed=5)
    a, b = ds[7], ds[7]
    assert a["data_samples"] == b["data_samples"]
    assert ds[17]["data_samples"]["i"] == 7 and ds[17]["data_samples"]["r"] != a["data_samples"]["r"]
    assert SeededDataset(_Items(10), seed=6)[7]["data_samples"]["r"] != a["data_samples"]["r"]
    np.random.seed(0)
    expect = np.random.rand()
    np.random.seed(0)
    ds[1]
    assert np.random.rand() == expect  # the caller's RNG stream is untouched
    bad = ds[3]
    assert bad["data_samples"]["i"] == 4 and bad["data_samples"]["num_skipped_frames"] == 1
    assert len(ds) == 10 and ds.metainfo == dict(classes=("a",))


def test_merge_cfg_options_names_unknown_keys():
    cfg = Config(dict(model=dict(type="CenterHead", in_channels=8, test_cfg=dict(score_thresh=0.1)),
                      train_cfg=dict(max_epochs=2)))
    merge_cfg_options(cfg, {"model.in_channels": 16, "model.with_iou": True, "train_cfg.max_epochs": 3})
    assert cfg.model.in_channels == 16 and cfg.model.with_iou is True and cfg.train_cfg.max_epochs == 3
    with pytest.raises(KeyError, match=r"model\.in_chanels.*did you mean \['in_channels'"):
        merge_cfg_options(cfg, {"model.in_chanels": 4})
    with pytest.raises(KeyError, match="modle.in_channels"):
        merge_cfg_options(cfg, {"modle.in_channels": 4})


def test_collate_and_preprocessor_layouts():
    items = [_Items()[i] for i in range(3)]
    batch = det3d_collate(items)
    assert len(batch["inputs"]["points"]) == 3 and batch["data_samples"][2]["i"] == 2
    pre = Det3DDataPreprocessor()
    out = pre(batch)
    assert [s["i"] for s in out["data_samples"]] == [0, 1, 2]
    # mmengine's pseudo_collate turns dict samples into a dict of lists: accepted too
    from mmengine.dataset import pseudo_collate
    out = pre(pseudo_collate(items))
    assert [s["i"] for s in out["data_samples"]] == [0, 1, 2] and len(out["inputs"]["points"]) == 3


class _PipelineOwner:
    """A dataset stand-in that owns an mmengine Compose of real transforms."""

    def __init__(self):
        from mmengine.dataset import Compose

        import perception3d.datasets  # noqa: F401  (registers the transforms)
        from perception3d.registry import TRANSFORMS
        self.pipeline = Compose([TRANSFORMS.build(dict(type="GlobalRotScaleTrans", rot_range=[-0.5, 0.5])),
                                 TRANSFORMS.build(dict(type="PointShuffle"))])

    def __len__(self):
        return 4


def _fake_runner(epoch, max_epochs, dataset):
    from types import SimpleNamespace
    import logging
    loader = SimpleNamespace(dataset=dataset, persistent_workers=True, _iterator=object())
    return SimpleNamespace(epoch=epoch, max_epochs=max_epochs, train_dataloader=loader,
                           logger=logging.getLogger("test"))


def _names(ds):
    return [type(t).__name__ for t in ds.dataset.pipeline.transforms]


def test_disable_aug_hook_drops_named_transforms_in_the_last_epochs_only():
    from perception3d.engine import DisableAugHook
    ds = SeededDataset(_PipelineOwner())
    hook = DisableAugHook(transforms=["GlobalRotScaleTrans", "ObjectSample"], num_last_epochs=1)
    for epoch in (0, 1):
        hook.before_train_epoch(_fake_runner(epoch, 3, ds))
        assert _names(ds) == ["GlobalRotScaleTrans", "PointShuffle"]
    runner = _fake_runner(2, 3, ds)
    hook.before_train_epoch(runner)
    assert _names(ds) == ["PointShuffle"] and hook.dropped == ["GlobalRotScaleTrans"]
    assert runner.train_dataloader._iterator is None          # persistent workers restarted
    # a run resumed inside the last epoch (a fresh hook) drops the same transforms
    ds2 = SeededDataset(_PipelineOwner())
    DisableAugHook(transforms=["GlobalRotScaleTrans"], num_last_epochs=2).before_train_epoch(_fake_runner(2, 3, ds2))
    assert _names(ds2) == ["PointShuffle"]


def test_disable_aug_hook_bad_input():
    from perception3d.engine import DisableAugHook
    with pytest.raises(ValueError, match="num_last_epochs"):
        DisableAugHook(num_last_epochs=-1)
    with pytest.raises(TypeError, match="no pipeline"):
        DisableAugHook().before_train_epoch(_fake_runner(0, 1, SeededDataset([1, 2, 3])))


def _one_cycle_pair(total, pct=0.4):
    from mmengine.optim import OneCycleLR
    from perception3d.engine import OneCycleMomentum
    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=0.003, betas=(0.95, 0.99))
    lr = OneCycleLR(opt, eta_max=0.003, total_steps=total, pct_start=pct, div_factor=10, final_div_factor=1e4,
                    by_epoch=False)
    mom = OneCycleMomentum(opt, moms=(0.95, 0.85), pct_start=pct, total_steps=total, by_epoch=False)
    seen = []
    for _ in range(total):
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]))
        opt.step(), lr.step(), mom.step()
    return seen


def test_one_cycle_momentum_matches_openpcdet_moms_by_hand():
    # T = 10, pct_start 0.4: phase 1 ends at step 3 (as OneCycleLR), phase 2 spans steps 3..9.
    seen = _one_cycle_pair(10)
    beta1 = [b[0] for _, b in seen]
    assert [b[1] for _, b in seen] == [0.99] * 10                     # β₂ untouched
    # step 1: p = 1/3 → 0.85 + 0.05·(1 + cos(π/3)) = 0.925; step 6: p = 1/2 of the way back → 0.90
    assert beta1[0] == pytest.approx(0.95) and beta1[1] == pytest.approx(0.925)
    assert beta1[3] == pytest.approx(0.85) and beta1[6] == pytest.approx(0.90) and beta1[9] == pytest.approx(0.95)
    lrs = [lr for lr, _ in seen]
    assert lrs.index(max(lrs)) == beta1.index(min(beta1)) == 3        # lowest β₁ at the peak lr


def test_one_cycle_momentum_builds_from_the_base_schedule_and_rejects_bad_moms():
    from mmengine.optim.scheduler import OneCycleLR
    from perception3d.engine import OneCycleMomentum
    from perception3d.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(os.path.join(os.path.dirname(__file__), "..", "configs", "_base_", "schedules",
                                       "adamw_onecycle.py"))
    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=cfg.lr, betas=(0.95, 0.99))
    built = []
    for spec in cfg.param_scheduler:
        spec = dict(spec, optimizer=opt, epoch_length=5)
        spec.pop("convert_to_iter_based")
        cls = PARAM_SCHEDULERS.get(spec.pop("type"))
        built.append(cls.build_iter_from_epoch(**spec))
    assert [type(s) for s in built] == [OneCycleLR, OneCycleMomentum]
    assert built[1].total_steps == built[0].total_steps == 5 * cfg.max_epochs
    with pytest.raises(ValueError, match="moms"):
        OneCycleMomentum(opt, moms=(0.95, 1.2), total_steps=10)


def test_prepare_waymo_mini_serialises_processes_that_start_together(tmp_path, monkeypatch):
    import threading
    import time
    from perception3d.datasets import prepare as prep
    spans = []

    def slow_prepare(root_p, out_p, gt_database, classes):
        start = time.monotonic()
        time.sleep(0.3)
        spans.append((start, time.monotonic()))
        return out_p
    monkeypatch.setattr(prep, "_prepare_waymo_mini_locked", slow_prepare)
    threads = [threading.Thread(target=prep.prepare_waymo_mini, args=(str(tmp_path / "mini"),)) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    (a0, a1), (b0, b1) = sorted(spans)
    assert len(spans) == 2 and b0 >= a1                     # the second waited for the first to finish


def test_prepare_waymo_mini_builds_the_gt_database_only_when_asked(tmp_path):
    """The mini configs skip the GT database (no GT sampling); asking for it later builds just the database on
    top of the existing conversion instead of converting again."""
    from perception3d.datasets import generate_waymo_mini
    from perception3d.datasets.prepare import prepare_waymo_mini
    root = tmp_path / "mini"
    generate_waymo_mini(root, num_train=2, num_val=1, lidar_width=64, camera=False)
    out = prepare_waymo_mini(str(root), gt_database=False)
    info = out / "waymo_infos_train.pkl"
    stamp = info.stat().st_mtime_ns
    assert info.is_file() and not (out / "waymo_dbinfos_train.pkl").exists()
    assert not (out / "waymo_gt_database").exists()
    prepare_waymo_mini(str(root), gt_database=True)
    assert (out / "waymo_dbinfos_train.pkl").is_file() and any((out / "waymo_gt_database").iterdir())
    assert info.stat().st_mtime_ns == stamp                 # not converted again


def test_prepare_waymo_mini_with_other_generator_arguments_converts_only_splits_with_frames(tmp_path):
    """``generator``: a dataset of validation frames only (another seed) is generated and converted once, with no
    train infos; a second call finds it current and leaves it alone."""
    from perception3d.datasets.prepare import prepare_waymo_mini
    gen = dict(num_train=0, num_val=2, seed=1, lidar_width=64, camera=False)
    out = prepare_waymo_mini(str(tmp_path / "val_only"), gt_database=True, generator=gen)
    info = out / "waymo_infos_val.pkl"
    assert info.is_file() and not (out / "waymo_infos_train.pkl").exists()
    assert not (out / "waymo_dbinfos_train.pkl").exists()             # no train split: no GT database
    stamp = info.stat().st_mtime_ns
    assert prepare_waymo_mini(str(tmp_path / "val_only"), gt_database=True, generator=gen) == out
    assert info.stat().st_mtime_ns == stamp                          # not converted again


def test_prepare_waymo_mini_at_the_top_of_a_script_a_spawned_worker_imports_is_a_clear_error(tmp_path):
    """A spawned worker imports the main script again as ``__mp_main__``; a prepare call at its top level (no
    ``if __name__ == "__main__":``) would wait for ever on the lock the parent holds, so it is an error naming the
    fix, raised before any file is made. The same module's function called later (a DDP rank's target) passes."""
    code = ("from perception3d.datasets.prepare import prepare_waymo_mini\n"
            f"def later():\n    return prepare_waymo_mini({str(tmp_path / 'mini')!r}, generator=dict(\n"
            "        num_train=0, num_val=1, lidar_width=64, camera=False))\n")
    ns = {"__name__": "__mp_main__"}
    with pytest.raises(RuntimeError, match="__name__ == \"__main__\""):
        exec(compile(code + "later()\n", "user_script.py", "exec"), ns)
    assert not (tmp_path / "mini").exists() and not list(tmp_path.iterdir())
    exec(compile(code, "user_script.py", "exec"), ns)
    assert (ns["later"]() / "waymo_infos_val.pkl").is_file()
