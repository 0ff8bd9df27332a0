"""One rank of the 2-process DDP check (tests/test_gpu_ddp.py), started by torch.distributed.run.

Each rank trains a small sparse network (SubMConv3d → BN-free ReLU → SubMConv3d) on its own sample for one SGD
step through DistributedDataParallel and saves its parameters to ``<out>/rank<R>.pt``."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perception3d.sparse import SubMConv3d  # noqa: E402
from sparse_reference import random_sparse  # noqa: E402

SCALE = 1000.0


def build_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(SubMConv3d(4, 8, 3), _Relu(), SubMConv3d(8, 4, 3))


class _Relu(torch.nn.Module):
    def forward(self, x):
        return x.replace(feats=torch.relu(x.feats))


def sample(rank: int, device) -> "object":
    return random_sparse((12, 14, 10), 1, 4, density=0.2, seed=10 + rank).to(device)


def loss_of(net, x) -> torch.Tensor:
    return (net(x).feats ** 2).sum() / SCALE


def main() -> None:
    backend, out = sys.argv[1], Path(sys.argv[2])
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = torch.device("cuda", local % torch.cuda.device_count())
    torch.cuda.set_device(device)
    dist.init_process_group(backend)
    net = build_net().to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index])
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    loss = loss_of(ddp, sample(rank, device))
    loss.backward()  # DDP averages the two ranks' gradients
    opt.step()
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, out / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
