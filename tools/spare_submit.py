"""Write or check a SpaRe benchmark submission ZIP (the logic lives in perception3d.evaluation.spare).

    python tools/spare_submit.py --renders DIR --split SPLIT.json --out submission.zip [--size 1600 1200]
    python tools/spare_submit.py --check submission.zip --split SPLIT.json [--size 1600 1200]
    python tools/spare_submit.py --checkpoints SCENE=CKPT [...] --root SPARE_ROOT --split SPLIT.json --out sub.zip

``--renders DIR`` holds one folder per scene with the test views as PNGs, named either as the benchmark wants
(``rect_{i+1:03d}_3_r5000.png`` for DTU, ``cam_{i+1:03d}_3_0000.png`` for SpaRe synthetic) or by view index
(``{i}.png`` / ``{i:03d}.png``). The ZIP is written atomically and then checked.
``--checkpoints`` renders the test views straight from trained scenes (any trainer checkpoint ``.pt`` or 3DGS
``.ply``, one per split scene), with the test cameras read from ``--root/<scene>`` (the SpaRe layout).
``--check`` lists every problem of an existing ZIP (missing / extra views, wrong names or size, an enclosing
folder, non-PNG or unreadable files) and exits 1 if there is any, 0 if the ZIP is right.
From Python, a render tool calls ``perception3d.evaluation.spare.write_submission(renders, split, zip_path)``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perception3d.cli import run_cli  # noqa: E402
from perception3d.evaluation.spare import (SPARE_SIZE, check_submission, load_split,  # noqa: E402
                                           view_filename, write_submission)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", required=True, help="split JSON (all scenes) or a folder of per-scene JSONs")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--renders", help="folder with <scene>/<image>.png renders")
    g.add_argument("--check", metavar="ZIP", help="validate an existing submission ZIP")
    g.add_argument("--checkpoints", nargs="+", metavar="SCENE=CKPT", help="render each split scene from its checkpoint")
    p.add_argument("--root", help="SpaRe data root with <scene>/ folders (test-view cameras), with --checkpoints")
    p.add_argument("--out", help="output ZIP (with --renders or --checkpoints)")
    p.add_argument("--size", type=int, nargs=2, default=list(SPARE_SIZE), metavar=("W", "H"),
                   help="required image size (default 1600 1200)")
    return p.parse_args(argv)


def collect_renders(root: Path, split) -> dict:
    """{scene: {view: path}} from a renders folder (benchmark names or index names)."""
    renders = {}
    for scene, e in split.items():
        d = root / scene
        got = {}
        for i in e.test_views:
            for cand in (view_filename(e.dataset, i), f"{i}.png", f"{i:03d}.png"):
                if (d / cand).is_file():
                    got[i] = d / cand
                    break
        if got:
            renders[scene] = got
    return renders


def submit_checkpoints(pairs: List[str], root: Optional[str], split, out: str, size) -> list:
    """Render every split scene's test views from its checkpoint (``SCENE=CKPT``) and write the ZIP."""
    import torch

    from perception3d.evaluation.spare import submission_from_renderer
    from perception3d.rendering.trainer import load_model, resolve_background

    if not root:
        raise ValueError("--root (the SpaRe data root with the scenes' cameras) is required with --checkpoints")
    models = {}
    for pair in pairs:
        scene, sep, ckpt = pair.partition("=")
        if not sep or not ckpt:
            raise ValueError(f"--checkpoints entries are SCENE=CKPT, got {pair!r}")
        if not Path(ckpt).is_file():
            raise FileNotFoundError(f"checkpoint of scene {scene!r} not found: {ckpt}")
        model, cfg = load_model(ckpt)
        models[scene] = (model, resolve_background(cfg)[0])
    missing = sorted(set(split) - set(models))
    if missing:
        raise ValueError(f"no checkpoint given for split scenes {missing}")

    @torch.no_grad()
    def render(name, scene, idx, cam):
        model, bg = models[name]
        out, _, _ = model.render(cam.viewmats, cam.Ks, cam.width, cam.height, background=bg)
        return out[0].clamp(0, 1)

    return submission_from_renderer(root, split, render, out, size=size)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    split = load_split(args.split)
    size = tuple(args.size)
    if args.check:
        problems = check_submission(args.check, split, size=size)
        if problems:
            print(f"{args.check}: {len(problems)} problem(s)")
            for p in problems:
                print(f"  - {p}")
            return 1
        n = sum(len(e.test_views) for e in split.values())
        print(f"{args.check}: OK ({len(split)} scenes, {n} views)")
        return 0
    if not args.out:
        raise ValueError("--out is required with --renders / --checkpoints")
    if args.checkpoints:
        names = submit_checkpoints(args.checkpoints, args.root, split, args.out, size)
    else:
        names = write_submission(collect_renders(Path(args.renders), split), split, args.out, size=size)
    print(f"wrote {args.out}: {len(names)} images, {len(split)} scenes")
    return 0


if __name__ == "__main__":
    run_cli(main)
