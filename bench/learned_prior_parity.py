"""Our learned-prior networks (``rendering.priors``: Depth Anything, RAFT) against the authors' code, with the same
weights, in one run: max |difference| of the outputs and the CPU time of each.

No released checkpoint can be had offline, so both networks get the same random weights (ours, saved in the
authors' parameter names: their ``load_state_dict`` must take them strictly). The authors' code comes from a local
checkout of their repository:

* ``--model depth_anything``: github.com/DepthAnything/Depth-Anything-V2 (its ``depth_anything_v2`` folder);
  torchvision, which their ``dpt.py`` imports for an image transform this check does not use, is stubbed when it
  is not installed;
* ``--model raft``: github.com/princeton-vl/RAFT (its ``core`` folder).

    OMP_NUM_THREADS=1 python bench/learned_prior_parity.py --model depth_anything --authors-repo PATH \\
        [--encoder vits] [--size 518 924] [--repeat 3]
    OMP_NUM_THREADS=1 python bench/learned_prior_parity.py --model raft --authors-repo PATH [--size 256 320]
"""
from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _random_(net: torch.nn.Module) -> None:
    """Random weights that move every part (biases too), and BatchNorm statistics away from 0 / 1."""
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.02 if p.dim() > 1 else 0.1)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def depth_anything_pair(repo: Path, encoder: str):
    try:
        import torchvision  # noqa: F401
    except ImportError:  # only torchvision.transforms.Compose is imported, for image2tensor (unused here)
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        tv.transforms.Compose = object
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms})
    sys.path.insert(0, str(repo))
    from depth_anything_v2.dpt import DepthAnythingV2

    from perception3d.rendering.priors.depth_anything import ENCODERS, DepthAnythingNet

    ours = DepthAnythingNet(encoder, version=2).eval()
    _random_(ours)
    with torch.no_grad():
        ours.depth_head.scratch.output_conv2[2].bias.fill_(1.0)  # an output above the final ReLU's zero
    _, _, _, features, channels = ENCODERS[encoder]
    theirs = DepthAnythingV2(encoder=encoder, features=features, out_channels=list(channels)).eval()
    return ours, theirs, lambda net, x: net(x), "depth_anything_v2/dpt.py"


def raft_pair(repo: Path, iters: int):
    sys.path.insert(0, str(repo / "core"))
    from raft import RAFT

    from perception3d.rendering.priors.raft import RAFTNet

    ours = RAFTNet().eval()
    _random_(ours)
    args = argparse.Namespace(small=False, mixed_precision=False, alternate_corr=False, dropout=0)
    theirs = RAFT(args).eval()

    def run(net, x):
        if isinstance(net, RAFTNet):
            return net(x[:1] * 255, x[1:] * 255, iters=iters)
        return net(x[:1] * 255, x[1:] * 255, iters=iters, test_mode=True)[1]

    return ours, theirs, run, "core/raft.py"


def timed(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return out, best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["depth_anything", "raft"])
    ap.add_argument("--authors-repo", required=True, type=Path)
    ap.add_argument("--encoder", default="vits", choices=["vits", "vitb", "vitl"], help="Depth Anything only")
    ap.add_argument("--iters", type=int, default=12, help="RAFT only: update iterations")
    ap.add_argument("--size", nargs=2, type=int, default=None, help="input H W (default 518 924 / 256 320)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    if args.model == "depth_anything":
        ours, theirs, run, needed = depth_anything_pair(args.authors_repo, args.encoder)
        size, what = args.size or [518, 924], f"Depth Anything v2 {args.encoder}"
        x = torch.randn(1, 3, *size)
    else:
        ours, theirs, run, needed = raft_pair(args.authors_repo, args.iters)
        size, what = args.size or [256, 320], f"RAFT, {args.iters} iterations"
        x = torch.rand(2, 3, *size)  # two images in [0, 1]
    if not (args.authors_repo / needed).is_file():
        sys.exit(f"{args.authors_repo}: no {needed} (a checkout of the authors' repository)")
    theirs.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        a, ta = timed(lambda: run(ours, x), args.repeat)
        b, tb = timed(lambda: run(theirs, x), args.repeat)
    diff, scale = float((a - b).abs().max()), float(b.abs().max())
    print(f"{what}, input {size[0]} x {size[1]}, {sum(p.numel() for p in ours.parameters()):,} parameters, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"output {tuple(a.shape)}; max |ours - authors'| = {diff:.3e} (authors' max |output| {scale:.3e})")
    print(f"CPU s per run: ours {ta:.3f}, authors' {tb:.3f}, ratio {ta / tb:.2f}")
    return diff, scale


if __name__ == "__main__":
    main()
