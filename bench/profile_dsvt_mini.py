"""Where one training iteration of a detector config spends its time (default: DSVT-P on the mini Waymo set).

    python bench/profile_dsvt_mini.py [--config configs/dsvt_waymo_mini.py] [--iters 12] [--warmup 3]
                                      [--threads N] [--out bench/results/profile_dsvt_mini.json]

One iteration = load + augment + collate a training batch, forward, loss, backward, optimizer step (the
config's optimizer, no scheduler). Forward parts are timed around each stage; backward parts by the moment the
gradient reaches each stage boundary (tensor hooks), so each backward row is that stage's own backward:

  data          dataset[i] (load, augment, pack) for the batch + collate
  vfe           voxelisation + pillar PFN (forward)          vfe bwd       its backward
  partition     DSVT window / set partition (coordinates only, no gradient)
  attention     DSVT blocks (set attention, FFN, norms, position embeddings)   attention bwd
  bev scatter   sparse → dense BEV                           scatter bwd
  bev convs     the 2-D BEV backbone                         bev convs bwd
  head          CenterHead convs                             head+loss bwd (from the loss to the head input)
  targets       heat map / box target assignment
  loss          focal + L1 + IoU losses (without the targets)
  optimizer     optimizer.step + zero_grad
Prints mean milliseconds per part over ``--iters`` iterations after ``--warmup``; writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "dsvt_waymo_mini.py"))
    p.add_argument("--iters", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "profile_dsvt_mini.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from mmengine.config import Config
    from mmengine.registry import FUNCTIONS, init_default_scope
    import perception3d.datasets  # noqa: F401
    import perception3d.engine  # noqa: F401
    import perception3d.models  # noqa: F401
    from perception3d.datasets.loading import det3d_collate
    from perception3d.registry import DATASETS, MODELS

    init_default_scope("perception3d")
    cfg = Config.fromfile(args.config)
    if cfg.get("prepare_data"):
        prep = dict(cfg.prepare_data)
        FUNCTIONS.get(prep.pop("type"))(**prep)
    torch.manual_seed(0)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    model = MODELS.build(cfg.model).train()
    opt_cfg = dict(cfg.optim_wrapper.optimizer)
    opt_cls = getattr(torch.optim, opt_cfg.pop("type"))
    optimizer = opt_cls(model.parameters(), **opt_cfg)
    bsz = int(cfg.train_dataloader.batch_size)

    times: dict = defaultdict(list)
    cur: dict = {}
    marks: dict = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            cur[name] = cur.get(name, 0.0) + time.perf_counter() - t
            return out
        return wrapper

    def grad_mark(name):
        def hook(g):
            marks.setdefault(name, time.perf_counter())
            return g
        return hook

    def feats_of(x):
        return x.feats if hasattr(x, "feats") else x

    # forward timers + gradient-arrival marks at each stage's output
    for attr, mark in (("voxel_encoder", "vfe_out"), ("backbone_3d", "dsvt_out"), ("map_to_bev", "bev_out"),
                       ("backbone_2d", "bev2d_out")):
        mod = getattr(model, attr, None)
        if mod is None:
            continue
        fwd = mod.forward

        def make(fwd=fwd, attr=attr, mark=mark):
            def f(*a, **k):
                t = time.perf_counter()
                out = fwd(*a, **k)
                cur[attr] = cur.get(attr, 0.0) + time.perf_counter() - t
                tens = feats_of(out)
                if tens.requires_grad:
                    tens.register_hook(grad_mark(mark))
                return out
            return f
        mod.forward = make()
    if hasattr(model.backbone_3d, "input_layer"):
        model.backbone_3d.input_layer.partition = timed("partition", model.backbone_3d.input_layer.partition)
    head = model.bbox_head
    head.forward = timed("head", head.forward)
    head.get_targets = timed("targets", head.get_targets)
    head.loss = timed("loss_all", head.loss)

    n = len(dataset)
    it = 0
    for step in range(args.warmup + args.iters):
        cur.clear()
        marks.clear()
        t0 = time.perf_counter()
        batch = det3d_collate([dataset[(step * bsz + j) % n] for j in range(bsz)])
        t_data = time.perf_counter()
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode="loss")
        loss = sum(v for v in losses.values())
        t_fwd = time.perf_counter()
        loss.backward()
        t_bwd = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        t_end = time.perf_counter()
        if step < args.warmup:
            continue
        it += 1
        row = {"data": t_data - t0, "vfe": cur.get("voxel_encoder", 0.0),
               "partition": cur.get("partition", 0.0),
               "attention": cur.get("backbone_3d", 0.0) - cur.get("partition", 0.0),
               "bev scatter": cur.get("map_to_bev", 0.0), "bev convs": cur.get("backbone_2d", 0.0),
               "head": cur.get("head", 0.0), "targets": cur.get("targets", 0.0),
               "loss": cur.get("loss_all", 0.0) - cur.get("targets", 0.0)}
        order = [("head+loss bwd", "bev2d_out"), ("bev convs bwd", "bev_out"), ("scatter bwd", "dsvt_out"),
                 ("attention bwd", "vfe_out")]
        prev = t_fwd
        for name, mark in order:
            m = marks.get(mark, prev)
            row[name] = m - prev
            prev = m
        row["vfe bwd"] = t_bwd - prev
        row["optimizer"] = t_end - t_bwd
        row["total"] = t_end - t0
        fwd_known = sum(row[k] for k in ("vfe", "partition", "attention", "bev scatter", "bev convs", "head",
                                         "targets", "loss"))
        row["other fwd"] = (t_fwd - t_data) - fwd_known
        for k, v in row.items():
            times[k].append(v)
    mean = {k: 1000 * sum(v) / len(v) for k, v in times.items()}
    threads = torch.get_num_threads()
    print(f"{Path(args.config).name}: batch {bsz}, {threads} thread(s), mean of {it} iterations (ms)")
    for k, v in mean.items():
        if k != "total":
            print(f"  {k:<15} {v:8.1f}  {100 * v / mean['total']:5.1f} %")
    print(f"  {'total':<15} {mean['total']:8.1f}")
    out = dict(config=Path(args.config).name, batch_size=bsz, threads=threads, iters=it, mean_ms=mean)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
