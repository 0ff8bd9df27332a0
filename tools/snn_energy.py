"""Firing rates, synaptic operations and energy of a spiking model (E-3DSNN), with the event-driven speed-up.

    python tools/snn_energy.py CONFIG [CKPT] [--max-samples 64] [--out-dir DIR] [--bench]

Runs the model in eval mode over the config's validation set and reports per layer:
  firing rate of the layer's input spikes (mean spike value per neuron; integer spikes can exceed 1),
  active-site rate (sites with any non-zero spike: what the event-driven conv gathers),
  MACs of the equivalent ANN (pairs × C_in × C_out), SOPs of the SNN (Σ_i s_i · fan-out_i · C_out),
  energy with E_MAC = 4.6 pJ and E_AC = 0.9 pJ (45 nm, Horowitz 2014): a spiking layer costs E_AC · SOPs,
  a layer fed real values (the encoding conv of Spike Voxel Coding, the final 1×1 conv, ANN heads) E_MAC · MACs.
Writes ``energy.json``, ``energy.png`` (per-layer ANN vs SNN energy and firing rates) into --out-dir.
``--bench`` also checks the event-driven path against the plain one (max |Δ| of the outputs) and times both.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


def _collate(cfg):
    from mmengine.registry import FUNCTIONS
    from mmengine.dataset import pseudo_collate
    ctype = (cfg.val_dataloader.get("collate_fn") or {}).get("type", "pseudo_collate")
    if ctype == "pseudo_collate":
        return pseudo_collate
    import perception3d.datasets  # noqa: F401  (registers det3d_collate)
    fn = FUNCTIONS.get(ctype)
    if fn is None:
        from perception3d.datasets import loading as _d
        fn = getattr(_d, ctype)
    return fn


def build(cfg, ckpt: str | None):
    from mmengine.registry import DefaultScope, init_default_scope
    from perception3d.registry import DATASETS, MODELS
    import perception3d.datasets  # noqa: F401
    import perception3d.evaluation  # noqa: F401
    import perception3d.models  # noqa: F401
    init_default_scope(cfg.get("default_scope", "perception3d"))
    model = MODELS.build(cfg.model)
    if ckpt:
        sd = torch.load(ckpt, map_location="cpu", weights_only=False)
        sd = sd.get("state_dict", sd)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise KeyError(f"{ckpt}: missing keys {missing[:5]}..., unexpected {unexpected[:5]}...")
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    return model.eval(), dataset


class _MacHooks:
    """Forward hooks that count MACs of real-valued layers outside SSC/SpikeLinear (ANN layers)."""

    def __init__(self, model: nn.Module) -> None:
        from perception3d.models.backbones.e3dsnn import SpikeLinear, SpikeSparseConv, conv_kmap
        from perception3d.sparse.conv import _SparseConvNd
        self.stats: Dict[str, Dict[str, float]] = {}
        inside = set()
        for m in model.modules():
            if isinstance(m, (SpikeSparseConv, SpikeLinear)):
                inside.update(id(x) for x in m.modules())
        self.handles = []
        for name, m in model.named_modules():
            if id(m) in inside:
                continue
            if isinstance(m, _SparseConvNd):
                def hook(mod, inp, out, name=name):
                    kmap, _ = conv_kmap(mod, inp[0])
                    self._add(name, float(kmap.num_pairs) * mod.in_channels * mod.out_channels)
            elif isinstance(m, nn.Linear):
                def hook(mod, inp, out, name=name):
                    self._add(name, float(inp[0].numel() // mod.in_features) * mod.in_features * mod.out_features)
            elif isinstance(m, nn.Conv2d):
                def hook(mod, inp, out, name=name):
                    k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                    self._add(name, float(out.numel()) * k)
            else:
                continue
            self.handles.append(m.register_forward_hook(hook))

    def _add(self, name: str, macs: float) -> None:
        st = self.stats.setdefault(name, dict(macs=0.0, calls=0.0))
        st["macs"] += macs
        st["calls"] += 1

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _batches(dataset, collate, batch_size: int, max_samples: int):
    n = min(len(dataset), max_samples)
    for s in range(0, n, batch_size):
        yield collate([dataset[i] for i in range(s, min(s + batch_size, n))])


def _run(model, data):
    data = model.data_preprocessor(data, False)
    return model(**data, mode="tensor")


def measure(model, dataset, collate, batch_size: int, max_samples: int) -> Dict:
    from perception3d.models.backbones.e3dsnn import conv_stats, set_recording
    from perception3d.models.layers.spiking import firing_stats
    set_recording(model, True)
    hooks = _MacHooks(model)
    n = 0
    with torch.no_grad():
        for data in _batches(dataset, collate, batch_size, max_samples):
            _run(model, data)
            n += len(data["inputs"]["points"]) if isinstance(data.get("inputs"), dict) else batch_size
    hooks.remove()
    layers = []
    for name, st in conv_stats(model).items():
        spiking = bool(st["spiking"])
        e_ann = E_MAC_PJ * st["macs"]
        e_snn = E_AC_PJ * st["sops"] if spiking else e_ann
        layers.append(dict(layer=name, spiking=spiking, firing_rate=st["sops"] / st["macs"] if st["macs"] else 0.0,
                           active_site_rate=st["active_sites_in"] / max(st["sites_in"], 1),
                           macs=st["macs"] / n, sops=st["sops"] / n, e_ann_uj=e_ann / n * 1e-6,
                           e_snn_uj=e_snn / n * 1e-6))
    for name, st in hooks.stats.items():
        e = E_MAC_PJ * st["macs"] / n * 1e-6
        layers.append(dict(layer=name, spiking=False, firing_rate=float("nan"), active_site_rate=1.0,
                           macs=st["macs"] / n, sops=0.0, e_ann_uj=e, e_snn_uj=e))
    neurons = {k: dict(firing_rate=v["firing_rate"], nonzero_rate=v["nonzero_rate"], site_rate=v["site_rate"])
               for k, v in firing_stats(model).items()}
    set_recording(model, False)
    tot = dict(macs=sum(l["macs"] for l in layers), sops=sum(l["sops"] for l in layers),
               e_ann_uj=sum(l["e_ann_uj"] for l in layers), e_snn_uj=sum(l["e_snn_uj"] for l in layers))
    spk = [l for l in layers if l["spiking"]]
    tot["mean_firing_rate"] = (sum(l["sops"] for l in spk) / max(sum(l["macs"] for l in spk), 1e-12))
    tot["mean_active_site_rate"] = statistics.fmean(l["active_site_rate"] for l in spk) if spk else float("nan")
    return dict(samples=n, layers=layers, neurons=neurons, total=tot)


def bench(model, dataset, collate, batch_size: int, max_samples: int, repeats: int = 5) -> Dict:
    """Plain vs event-driven inference on the same voxelized batches (kernel maps cached, so the timing is the
    convolution work) and the max abs difference of the outputs; ``event`` always takes the event path,
    ``auto`` falls back to the plain path where more than 80 % of a layer's sites fire.
    Then a sweep at the trained spikes of every SSC: a fraction of the sites silenced, conv time plain vs event."""
    from perception3d.models.backbones.e3dsnn import SpikeSparseConv, event_driven_conv, set_event_driven
    from perception3d.sparse import SparseTensor
    net = getattr(model, "backbone", model)
    svc = getattr(net, "svc", None)
    res = dict(max_abs_diff=0.0, plain_s=0.0, event_s=0.0, auto_s=0.0)
    feats_of = lambda o: o[0].feats if isinstance(o, tuple) else (o.feats if isinstance(o, SparseTensor) else o)
    captured = []
    hooks = [m.conv.register_forward_pre_hook(lambda mod, inp: captured.append((mod, inp[0])))
             for m in net.modules() if isinstance(m, SpikeSparseConv) and m.spike is not None]
    with torch.no_grad():
        for bi, data in enumerate(_batches(dataset, collate, batch_size, max_samples)):
            pts = data["inputs"]["points"]
            x = svc.voxelize(pts)[0] if svc is not None else pts
            set_event_driven(net, False)
            a = net(x)
            for h in hooks:
                h.remove()
            hooks = []
            set_event_driven(net, True, max_active=1.0)
            b = net(x)
            res["max_abs_diff"] = max(res["max_abs_diff"], float((feats_of(a) - feats_of(b)).abs().max()))
            for mode, key in ((False, "plain_s"), ("event", "event_s"), ("auto", "auto_s")):
                set_event_driven(net, bool(mode), max_active=1.0 if mode == "event" else 0.8)
                ts = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    net(x)
                    ts.append(time.perf_counter() - t)
                res[key] += statistics.median(ts)
        set_event_driven(net, False, max_active=0.8)
        res["speedup"] = res["plain_s"] / max(res["event_s"], 1e-12)
        res["speedup_auto"] = res["plain_s"] / max(res["auto_s"], 1e-12)
        sweep = []
        g = torch.Generator().manual_seed(0)
        for keep in (1.0, 0.5, 0.25, 0.1):
            tp = te = 0.0
            diff = 0.0
            for conv, s in captured:
                mask = (torch.rand(len(s), 1, generator=g) < keep).to(s.feats.dtype) if keep < 1 else 1.0
                s2 = s.replace(feats=s.feats * mask)
                site = float((s2.feats != 0).any(1).float().mean())
                for fn, acc in ((lambda: conv(s2), "p"), (lambda: event_driven_conv(conv, s2), "e")):
                    ts = []
                    for _ in range(repeats):
                        t = time.perf_counter()
                        out = fn()
                        ts.append(time.perf_counter() - t)
                    if acc == "p":
                        tp += statistics.median(ts)
                        ref = out.feats
                    else:
                        te += statistics.median(ts)
                        diff = max(diff, float((out.feats - ref).abs().max()))
            sweep.append(dict(keep=keep, plain_s=tp, event_s=te, speedup=tp / max(te, 1e-12), max_abs_diff=diff))
        res["sweep"] = sweep
    return res


def plot(result: Dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layers = result["layers"]
    names = [l["layer"] for l in layers]
    x = range(len(layers))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(layers)), 8), sharex=True)
    ax1.bar([i - 0.2 for i in x], [l["e_ann_uj"] for l in layers], 0.4, label=f"ANN ({E_MAC_PJ} pJ/MAC)")
    ax1.bar([i + 0.2 for i in x], [l["e_snn_uj"] for l in layers], 0.4, label=f"SNN ({E_AC_PJ} pJ/AC)")
    ax1.set_ylabel("energy per sample (µJ)")
    t = result["total"]
    ax1.set_title(f"total: ANN {t['e_ann_uj'] / 1e3:.3f} mJ vs SNN {t['e_snn_uj'] / 1e3:.3f} mJ per sample")
    ax1.legend()
    ax2.bar(list(x), [l["firing_rate"] if l["spiking"] else 0 for l in layers], 0.4, label="firing rate")
    ax2.bar([i + 0.4 for i in x], [l["active_site_rate"] if l["spiking"] else 0 for l in layers], 0.4,
            label="active-site rate")
    ax2.set_ylabel("input firing")
    ax2.legend()
    ax2.set_xticks(list(x))
    ax2.set_xticklabels(names, rotation=75, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_table(result: Dict) -> str:
    rows = [f"{'layer':36s} {'spk':>3s} {'fr':>6s} {'site':>6s} {'MACs(M)':>10s} {'SOPs(M)':>10s} "
            f"{'E_ANN(uJ)':>10s} {'E_SNN(uJ)':>10s}"]
    for l in result["layers"]:
        fr = f"{l['firing_rate']:.3f}" if l["spiking"] else "-"
        rows.append(f"{l['layer'][:36]:36s} {'y' if l['spiking'] else 'n':>3s} {fr:>6s} "
                    f"{l['active_site_rate']:6.3f} {l['macs'] / 1e6:10.3f} {l['sops'] / 1e6:10.3f} "
                    f"{l['e_ann_uj']:10.3f} {l['e_snn_uj']:10.3f}")
    t = result["total"]
    rows.append(f"{'TOTAL per sample':36s} {'':3s} {t['mean_firing_rate']:6.3f} {t['mean_active_site_rate']:6.3f} "
                f"{t['macs'] / 1e6:10.3f} {t['sops'] / 1e6:10.3f} {t['e_ann_uj']:10.3f} {t['e_snn_uj']:10.3f}")
    rows.append(f"energy ratio ANN/SNN: {t['e_ann_uj'] / max(t['e_snn_uj'], 1e-12):.2f}x "
                f"(samples: {result['samples']})")
    return "\n".join(rows)


def main(argv: List[str] | None = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config")
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--max-samples", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out-dir")
    p.add_argument("--bench", action="store_true", help="also time plain vs event-driven inference")
    p.add_argument("--cfg-options", nargs="+", default=None)
    args = p.parse_args(argv)
    from perception3d.cli import check_checkpoint, load_config
    cfg = load_config(args.config)
    if args.checkpoint:
        check_checkpoint(args.checkpoint)
    if args.cfg_options:
        cfg.merge_from_dict(dict(kv.split("=", 1) for kv in args.cfg_options))
    model, dataset = build(cfg, args.checkpoint)
    collate = _collate(cfg)
    result = measure(model, dataset, collate, args.batch_size, args.max_samples)
    print(format_table(result))
    if args.bench:
        result["event_driven"] = bench(model, dataset, collate, args.batch_size, args.max_samples)
        e = result["event_driven"]
        print(f"event-driven vs plain (whole net, trained spikes): max |diff| {e['max_abs_diff']:.2e}, plain "
              f"{e['plain_s']:.3f} s, event {e['event_s']:.3f} s ({e['speedup']:.2f}x), auto {e['auto_s']:.3f} s "
              f"({e['speedup_auto']:.2f}x); mean active-site rate {result['total']['mean_active_site_rate']:.3f}")
        for r in e["sweep"]:
            print(f"  sites kept {r['keep']:.2f}: SSC convs plain {r['plain_s']:.3f} s, event {r['event_s']:.3f} s, "
                  f"speed-up {r['speedup']:.2f}x, max |diff| {r['max_abs_diff']:.1e}")
    out = args.out_dir or os.path.join("work_dirs", os.path.splitext(os.path.basename(args.config))[0], "energy")
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "energy.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, os.path.join(out, "energy.json"))
    plot(result, os.path.join(out, "energy.png"))
    print(f"wrote {out}/energy.json and {out}/energy.png")
    return result


if __name__ == "__main__":
    from perception3d.cli import run_cli
    run_cli(main)
