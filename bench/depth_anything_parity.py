"""Our Depth Anything network (``rendering.priors.depth_anything``) against the authors' code, with the same
weights, in one run: max |difference| of the inverse depth and the CPU time of each.

No released checkpoint can be had offline, so both networks get the same random weights (ours, saved in the
authors' parameter names: ``load_state_dict`` must take them strictly). The authors' code comes from a local
checkout of github.com/DepthAnything/Depth-Anything-V2 (its ``depth_anything_v2`` folder); torchvision, which
their ``dpt.py`` imports for one image transform this check does not use, is stubbed when it is not installed.

    OMP_NUM_THREADS=1 python bench/depth_anything_parity.py --authors-repo /path/to/Depth-Anything-V2 \\
        [--encoder vits] [--size 518 924] [--repeat 3]
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


def authors_model(repo: Path, encoder: str):
    try:
        import torchvision  # noqa: F401
    except ImportError:  # only torchvision.transforms.Compose is imported, for image2tensor (unused here)
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        tv.transforms.Compose = object
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms})
    sys.path.insert(0, str(repo))
    from depth_anything_v2.dpt import DepthAnythingV2

    from perception3d.rendering.priors.depth_anything import ENCODERS

    _, _, _, features, channels = ENCODERS[encoder]
    return DepthAnythingV2(encoder=encoder, features=features, out_channels=list(channels)).eval()


def timed(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return out, best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--authors-repo", required=True, type=Path)
    ap.add_argument("--encoder", default="vits", choices=["vits", "vitb", "vitl"])
    ap.add_argument("--size", nargs=2, type=int, default=[518, 924], help="input H W (multiples of 14)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if not (args.authors_repo / "depth_anything_v2" / "dpt.py").is_file():
        sys.exit(f"{args.authors_repo}: no depth_anything_v2/dpt.py (a checkout of DepthAnything/Depth-Anything-V2)")

    from perception3d.rendering.priors.depth_anything import DepthAnythingNet

    torch.manual_seed(0)
    ours = DepthAnythingNet(args.encoder, version=2).eval()
    with torch.no_grad():  # random weights that move every part (the authors' init leaves the head near zero)
        for p in ours.parameters():
            p.normal_(0.0, 0.02 if p.dim() > 1 else 0.1)
        ours.depth_head.scratch.output_conv2[2].bias.fill_(1.0)  # an output above the final ReLU's zero
    theirs = authors_model(args.authors_repo, args.encoder)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(1, 3, *args.size)
    with torch.no_grad():
        a, ta = timed(lambda: ours(x), args.repeat)
        b, tb = timed(lambda: theirs(x), args.repeat)
    diff = float((a - b).abs().max())
    scale = float(b.abs().max())
    print(f"Depth Anything v2 {args.encoder}, input {args.size[0]} x {args.size[1]}, "
          f"{sum(p.numel() for p in ours.parameters()):,} parameters, {torch.get_num_threads()} thread(s)")
    print(f"output {tuple(a.shape)}; max |ours - authors'| = {diff:.3e} (authors' max |output| {scale:.3e}, "
          f"non-zero share {float((b > 0).float().mean()):.3f})")
    print(f"CPU s per image: ours {ta:.3f}, authors' {tb:.3f}, ratio {ta / tb:.2f}")
    return diff, scale


if __name__ == "__main__":
    main()
