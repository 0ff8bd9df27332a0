"""End-to-end tool tests on a toy config (tests/_engine_toy_cfg.py): exact resume after SIGKILL, DDP (gloo)
against a single process, bad config keys."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TOY_CFG = str(ROOT / "tests" / "_engine_toy_cfg.py")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _train(work_dir, *extra, wait=True):
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), TOY_CFG, "--work-dir", str(work_dir), "--seed", "3",
           *extra]
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
        return out
    return p


def _losses(work_dir):
    """iteration → loss; a resumed run re-logs iterations after its checkpoint: the last entry wins."""
    out = {}
    for line in (Path(work_dir) / "losses.jsonl").read_text().splitlines():
        d = json.loads(line)
        out[d["iter"]] = d["loss"]
    return out


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_sigkill_resume_is_exact(tmp_path):
    """Kill a run with SIGKILL between two checkpoints, resume it, and get the uninterrupted run's losses and
    final weights bit for bit (same seed, CPU). Checkpoints every 3 iterations, 24 iterations in 3 epochs,
    a corrupt frame (skipped), dropout in the model, random augmentation in the dataset."""
    a, b = tmp_path / "a", tmp_path / "b"
    pa = _train(a, wait=False)
    pb = _train(b, "--cfg-options", "train_dataloader.dataset.dataset.delay=0.05", wait=False)
    log = b / "losses.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120:  # kill b mid-epoch 2, after iteration 10 (last checkpoint: iteration 9)
        if log.exists() and len(log.read_text().splitlines()) >= 10:
            break
        assert pb.poll() is None, pb.communicate()[0][-3000:]
        time.sleep(0.01)
    pb.send_signal(signal.SIGKILL)
    pb.wait()
    killed_at = len(log.read_text().splitlines())
    assert 10 <= killed_at < 24, f"the run was not killed mid-run ({killed_at} iterations logged)"
    out_a, _ = pa.communicate(timeout=300)
    assert pa.returncode == 0, out_a[-3000:]
    out_b = _train(b, "--resume")
    assert "bad frames skipped: 3" in out_a and "bad frames skipped: 3" in out_b
    la, lb = _losses(a), _losses(b)
    assert sorted(la) == list(range(1, 25)) and sorted(lb) == sorted(la)
    assert [la[i] for i in la] == [lb[i] for i in la]
    wa, wb = _weights(a / "iter_24.pth"), _weights(b / "iter_24.pth")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.slow  # three processes (~40 s CPU): run with -m slow
def test_ddp_gloo_matches_single_process(tmp_path):
    """2 processes × batch 1 (gloo DDP, gradients averaged) == 1 process × batch 1 with 2-step gradient
    accumulation (loss/2 each): the same sample pairs (DefaultSampler gives rank r the indices r::2 of the
    same permutation, the single process takes them in order), the same averaged gradient, BN statistics per
    sample in both (DDP has no SyncBN here), constant LR, no dropout. DDP iteration i ≙ single iteration 2i+1."""
    common = ["model.dropout=0.0", "param_scheduler=None", "train_dataloader.batch_size=1",
              "default_hooks.checkpoint.interval=1000"]
    s, d = tmp_path / "single", tmp_path / "ddp"
    ps = _train(s, "--cfg-options", *common, "optim_wrapper.accumulative_counts=2", wait=False)
    port = str(29600 + os.getpid() % 300)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(ROOT / "tools" / "train.py"), TOY_CFG, "--work-dir", str(d), "--seed", "3", "--launcher", "pytorch",
           "--cfg-options", *common]
    pd = subprocess.run(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert pd.returncode == 0, pd.stdout[-4000:]
    out_s, _ = ps.communicate(timeout=300)
    assert ps.returncode == 0, out_s[-3000:]
    ls, ld = _losses(s), _losses(d)
    assert len(ld) == 24 and len(ls) == 48
    for i in range(1, 25):
        assert abs(ld[i] - ls[2 * i - 1]) <= 1e-4 * max(1.0, abs(ls[2 * i - 1])), (i, ld[i], ls[2 * i - 1])
    ws = torch.load(s / "epoch_3.pth", weights_only=False)["state_dict"] if (s / "epoch_3.pth").exists() else None
    wd_files = sorted(d.glob("*.pth"))
    ws_files = sorted(s.glob("*.pth"))
    assert wd_files and ws_files
    wd = _weights(max(wd_files, key=lambda p: p.stat().st_mtime))
    ws = _weights(max(ws_files, key=lambda p: p.stat().st_mtime))
    for k, v in wd.items():
        if "running" in k or "num_batches" in k:  # BN running stats follow rank 0 only under DDP
            continue
        assert torch.allclose(v, ws[k], atol=1e-5, rtol=1e-4), k


def test_train_tool_rejects_unknown_cfg_key(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    import importlib.util
    spec = importlib.util.spec_from_file_location("train_tool", ROOT / "tools" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(KeyError, match="optim_wrapper.optimizer.lrr"):
        mod.main([TOY_CFG, "--work-dir", str(tmp_path), "--cfg-options", "optim_wrapper.optimizer.lrr=0.1"])
    with pytest.raises(KeyError, match="train_cfg.max_epoch"):
        mod.main([TOY_CFG, "--work-dir", str(tmp_path), "--cfg-options", "train_cfg.max_epoch=2"])
