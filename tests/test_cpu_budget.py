"""``train.max_cpu_minutes``: a run stops on process CPU time (counted from the trainer's construction), records it,
and a method's schedule follows the CPU budget; wall time spent waiting (a shared machine) does not count."""

import time

import pytest
import torch


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from perception3d.rendering.default_scene import make_default_scene

    root = tmp_path_factory.mktemp("cpu_budget_scene")
    make_default_scene(root, n_train=4, n_test=1, size=32)
    return root


def _cfg(root, **train):
    return {
        "data": dict(type="default", root=str(root), generate=dict(n_train=4, n_test=1, size=32)),
        "model": dict(init="random", init_num=500, init_center=(0, 0, 0), init_extent=1.0, sh_degree=0),
        "train": dict(max_steps=100_000, eval_every=10**9, save_every=10**9, log_every=10**9, tile_size=8, **train),
        "strategy": dict(refine_start_iter=10**9, refine_stop_iter=10**9, reset_every=10**9),
    }


def test_cpu_budget_stops_the_run_and_is_recorded(tmp_path, tiny_scene):
    from perception3d.rendering.trainer import GSTrainer

    torch.set_num_threads(1)
    tr = GSTrainer(_cfg(tiny_scene, max_cpu_minutes=100.0), tmp_path / "run", progress=False)
    budget = tr.cpu_seconds() + 0.6  # the set-up's CPU time counts; 0.6 s more for training
    tr.max_cpu_minutes = budget / 60.0
    time.sleep(0.7)  # wall time spent idle (another process's slice) is not CPU time: the run still trains
    res = tr.train()
    assert 0 < res["steps"] < 100_000 and res["steps"] == tr.step
    assert res["cpu_s"] >= budget and tr.cpu_budget_frac() == 1.0
    assert res["cpu_s"] < budget + 5.0  # one step and the final evaluation past the budget, at most
    t = GSTrainer(_cfg(tiny_scene), tmp_path / "run2", progress=False)
    assert t.max_cpu_minutes is None and t.cpu_budget_frac() == 0.0


def test_lmgaussian_schedule_follows_the_cpu_budget(tmp_path, tiny_scene):
    """LM-Gaussian's progress (its schedule and learning-rate decay) is the larger of steps / max_steps and the
    CPU budget used; CoherentGS's trainer reads the same fraction (``GSTrainer.cpu_budget_frac``)."""
    from perception3d.rendering.lmgaussian.trainer import LMGaussianTrainer

    cfg = _cfg(tiny_scene, max_cpu_minutes=1000.0)
    cfg["strategy"] = dict(refine_stop_iter=0)
    cfg["model"] = dict(init="frustum", init_num=500, sh_degree=0)
    cfg["lmgaussian"] = dict(depth_prior=dict(type="plane_sweep", num_planes=8, max_width=32, consistency=False),
                             refiner=dict(type="none"), lambda_virtual=0.0)
    tr = LMGaussianTrainer(cfg, tmp_path / "lm", progress=False)
    p0 = tr.progress_frac()
    assert 0 < p0 < 1e-2  # only the CPU time of the set-up
    tr.max_cpu_minutes = tr.cpu_seconds() / 60.0 / 0.5  # half of the budget is now used
    assert tr.progress_frac() == pytest.approx(0.5, abs=0.05)


def test_means_learning_rate_decays_over_the_cpu_budget(tmp_path, tiny_scene):
    """The means' learning rate decays to 1 % over the run, following the CPU budget when it ends the run before
    the step cap (a baseline that fills its budget still ends its schedule)."""
    from perception3d.rendering.trainer import GSTrainer

    tr = GSTrainer(_cfg(tiny_scene, max_cpu_minutes=1000.0), tmp_path / "lr", progress=False)
    base = tr.base_lr["means"]
    assert tr._means_lr() == pytest.approx(base, rel=1e-3)  # step 0, almost no CPU used
    tr.max_cpu_minutes = tr.cpu_seconds() / 60.0 / 0.5  # half of the budget used, 0 of 100k steps
    assert tr._means_lr() == pytest.approx(base * 0.1, rel=0.12)
    tr.max_cpu_minutes = None  # no budget: steps / max_steps alone, as 3DGS
    tr.step = 50_000
    assert tr._means_lr() == pytest.approx(base * 0.1, rel=1e-6)
