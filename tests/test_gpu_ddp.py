"""A 2-process DistributedDataParallel step on CUDA (torch.distributed.run, as tools/dist_train.sh): both ranks
end with the same weights, equal to one process stepping on the mean of the two samples' losses.
nccl needs two GPUs (NCCL refuses two ranks on one device); on a one-GPU machine the same run goes over gloo
with CUDA tensors. Skipped without a GPU; run by scripts/gpu_check.sh."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("backend", ["nccl", "gloo"])
def test_two_process_ddp_step_equals_single_process(backend, tmp_path):
    if backend == "nccl" and torch.cuda.device_count() < 2:
        pytest.skip(f"nccl DDP with 2 processes needs 2 GPUs, this machine has {torch.cuda.device_count()}")
    env = dict(os.environ, PYTHONPATH=str(HERE.parent), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(HERE / "_gpu_ddp_worker.py"), backend, str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    sys.path.insert(0, str(HERE))
    import _gpu_ddp_worker as wk
    net = wk.build_net().cuda()
    init = {k: v.detach().clone().cpu() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = 0.5 * (wk.loss_of(net, wk.sample(0, "cuda")) + wk.loss_of(net, wk.sample(1, "cuda")))
    loss.backward()
    opt.step()
    for k, v in net.state_dict().items():
        assert not torch.equal(init[k], w0[k]), f"{k}: the step changed nothing"
        assert torch.equal(w0[k], w1[k]), f"{k}: the ranks disagree"
        assert torch.allclose(w0[k], v.cpu(), atol=1e-5, rtol=1e-4), f"{k}: DDP differs from one process"
