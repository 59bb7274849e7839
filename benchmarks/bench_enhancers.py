"""Benchmark: training speed, FLOP bound and profile of each learned enhancer on 48 x 48 faces.

Usage::

    .venv/bin/python benchmarks/bench_enhancers.py [--device cpu|cuda] [--batch 64] [--threads 1 2]
        [--enhancers zerodce mirnet retinexnet llenet] [--variants before cpu] [--train-steps 4]
        [--repeats 2] [--infer-images 256] [--profile] [--out benchmarks/results/enhancers_speed.json]

For each learned enhancer, variant and torch thread count:

* **training** images / s: ``LearnedEnhancer.fit`` (the one engine, as ``train_enhancer`` runs it:
  whole faces, batches of ``--batch`` from a seeded permutation, flip, loss, backward, Adam step) on
  pairs (darkened x0.1, clean); a one-step warm-up fit, then ``--repeats`` timed fits of
  ``--train-steps`` steps (median; RetinexNet: its two phases in the params' proportion);
* **FLOPs** of one training step (forward + loss + backward, ``torch.utils.flop_counter``: convolutions
  and matrix products) and the GFLOP/s that the timed step reached, beside the GFLOP/s of a plain
  64 -> 64 3 x 3 convolution (forward, batch 64, 48 px) at the same thread count: the FLOP bound;
* **inference** images / s of ``enhance`` (uint8 in and out) on ``--infer-images`` faces;
* with ``--profile``: the 8 operators with the most self CPU time in 2 training steps (torch.profiler).

Variants: ``before`` is the "cpu" preset as it was before issue 11's changes (MIRNet with BlurPool,
LLENet's perceptual term at VGG relu1_2, no input gain normalisation, no channels_last); ``cpu`` is the
preset as ``params.yaml`` builds it now, trained with ``runtime.channels_last``; ``paper`` the published
sizes.  Faces are seeded synthetic 48 x 48 gray faces (speed does not depend on the content).  Every
number is one process on a machine that may be shared: the 1-minute load average before and after is
recorded.  Results: ``--out`` (JSON) and a bar chart beside it (``.png``), both printed / saved under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_classical import synthetic_faces  # noqa: E402  (the same 48 px blob faces)

#: model overrides that rebuild the "cpu" presets as they were before issue 11 (speed baseline)
BEFORE = {
    "mirnet": {"downsample": "blur", "input_gain": None},
    "llenet": {"perceptual_layer": "relu1_2", "input_gain": None},
    "retinexnet": {"input_gain": None},
    "zerodce": {"input_gain": None},
}


def params_yaml() -> dict:
    import yaml

    return yaml.safe_load((REPO / "params.yaml").read_text()) or {}


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def build(cls, name: str, variant: str):
    if variant == "before":
        return cls(preset="cpu", **BEFORE.get(name, {}))
    return cls(preset=variant)


def step_flops(enh, batch: int, device: str) -> float:
    """FLOPs of one training step (forward + loss + backward) on a batch of 48 px faces."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(batch, 3, 48, 48, device=device) * 0.1
    y = torch.rand(batch, 3, 48, 48, device=device)
    enh.model.to(device)
    if hasattr(enh, "phase"):
        enh.phase = "decom"
    fc = FlopCounterMode(display=False)
    with fc:
        loss, _ = enh.loss(x, y)
        loss.backward()
    enh.model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def plain_conv_gflops(device: str, batch: int = 64) -> float:
    import torch

    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device)
    z = torch.rand(batch, 64, 48, 48, device=device)
    with torch.no_grad():
        conv(z)
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            conv(z)
            if device == "cuda":
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - t)
    return 2 * 64 * 64 * 9 * 48 * 48 * batch / min(runs) / 1e9


def profile_ops(enh, low, high, kw: dict, top: int = 8) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        enh.fit(low, high, steps=2, **kw)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    return [{"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
             "share": round(e.self_cpu_time_total / total, 3), "calls": e.count} for e in rows[:top]]


def bench_one(cls, name: str, variant: str, args, low, high, train_cfg: dict, channels_last: bool) -> dict:
    import torch

    from llfer.enhance.base import num_params

    torch.manual_seed(0)
    enh = build(cls, name, variant)
    cl = channels_last and variant != "before"
    row: dict = {"variant": variant, "params": num_params(enh.model), "config": enh.config, "channels_last": cl}
    opt = {"optimizer": train_cfg.get("optimizer", "adam"), "lr": float(train_cfg.get("lr", 1e-4))}
    kw = dict(batch_size=args.batch, patch=0, device=args.device, progress=False, channels_last=cl, **opt)
    flops = step_flops(enh, args.batch, args.device)
    enh.fit(low, high, steps=1, **kw)  # warm-up (allocator, lazy init, VGG build)
    runs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        hist = enh.fit(low, high, steps=args.train_steps, **kw)
        runs.append(time.perf_counter() - t)
    dt = float(np.median(runs))
    row["train"] = {"steps": args.train_steps, "batch": args.batch, "repeats_seconds": [round(r, 3) for r in runs],
                    "images_per_second": round(args.train_steps * args.batch / dt, 1),
                    "images_per_second_best": round(args.train_steps * args.batch / min(runs), 1),
                    "gflop_per_step": round(flops / 1e9, 2),
                    "gflops_achieved": round(flops * args.train_steps / dt / 1e9, 2),
                    "last_loss": hist[-1]["train_loss"], **opt}
    if args.infer_images:
        x = low[: args.infer_images]
        enh.enhance(x[:4], batch_size=args.batch, device=args.device)
        t = time.perf_counter()
        enh.enhance(x, batch_size=args.batch, device=args.device)
        row["infer"] = {"images": int(len(x)), "images_per_second": round(len(x) / (time.perf_counter() - t), 1)}
    if args.profile:
        row["profile"] = profile_ops(enh, low, high, kw)
    return row


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = res["results"]
    names = sorted({n for t in runs.values() for n in t})
    variants = sorted({v for t in runs.values() for n in t.values() for v in n}, key=lambda v: ("before", "cpu", "paper").index(v))
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False)
    for ax, (threads, table) in zip(axes[0], runs.items()):
        w = 0.8 / max(1, len(variants))
        for k, v in enumerate(variants):
            vals = [table.get(n, {}).get(v, {}).get("train", {}).get("images_per_second", 0) for n in names]
            ax.bar(np.arange(len(names)) + k * w, vals, w, label=v)
        ax.set_xticks(np.arange(len(names)) + w * (len(variants) - 1) / 2, names)
        ax.set_ylabel("training images / s")
        ax.set_title(f"{threads} thread(s), batch {res['batch']}, 48 px")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads values")
    ap.add_argument("--enhancers", nargs="+", default=None, help="default: every learned enhancer")
    ap.add_argument("--variants", nargs="+", default=["before", "cpu"], choices=["before", "cpu", "paper"])
    ap.add_argument("--train-steps", type=int, default=4, help="timed training steps per repeat")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per measurement (median reported)")
    ap.add_argument("--infer-images", type=int, default=256)
    ap.add_argument("--profile", action="store_true", help="add the top operators of 2 training steps")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "enhancers_speed.json"))
    args = ap.parse_args(argv)

    import torch

    import llfer.enhance  # noqa: F401  (registers the enhancers)
    from llfer.io import write_json
    from llfer.registry import ENHANCERS

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    p = params_yaml()
    channels_last = bool((p.get("runtime") or {}).get("channels_last", False))
    train_cfg = {k: (v or {}).get("train", {}) for k, v in (p.get("learned") or {}).items()}
    names = args.enhancers or [n for n in ENHANCERS.names() if getattr(ENHANCERS.get(n), "learned", False)]
    high = synthetic_faces(max(args.infer_images, args.batch * 4))
    low = np.floor(high.astype(np.float64) * 0.1).astype(np.uint8)
    results: dict = {}
    conv_ref: dict = {}
    load0 = loadavg()
    for threads in args.threads:
        torch.set_num_threads(threads)
        conv_ref[threads] = round(plain_conv_gflops(args.device, args.batch), 1)
        print(f"\n{args.device}, {threads} thread(s), batch {args.batch}, 48x48 faces; plain 3x3 conv 64->64: "
              f"{conv_ref[threads]} GFLOP/s (load {loadavg()})")
        print(f"{'enhancer':10s} {'variant':7s} {'params':>10s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'train img/s':>11s} {'infer img/s':>11s}")
        table = results[str(threads)] = {}
        for name in names:
            cls = ENHANCERS.get(name)
            table[name] = {}
            for variant in args.variants:
                r = bench_one(cls, name, variant, args, low, high, train_cfg.get(name, {}), channels_last)
                table[name][variant] = r
                t = r["train"]
                print(f"{name:10s} {variant:7s} {r['params']:10,d} {t['gflop_per_step']:10.1f} {t['gflops_achieved']:8.1f} "
                      f"{t['images_per_second']:11.1f} {r.get('infer', {}).get('images_per_second', float('nan')):11.1f}", flush=True)
                for op in r.get("profile", []):
                    print(f"    {op['share']:6.1%} {op['self_cpu_ms']:9.1f} ms  {op['op']}")
    res = {
        "benchmark": "learned enhancers: training images/s (LearnedEnhancer.fit), FLOPs per step, GFLOP/s, inference images/s",
        "images": "48x48 gray synthetic faces, darkened x0.1; gray is repeated to 3 channels",
        "batch": args.batch,
        "variants": {"before": f"cpu preset before issue 11 (overrides {BEFORE}), contiguous memory",
                     "cpu": f"cpu preset now, channels_last {channels_last} (runtime.channels_last)",
                     "paper": "published sizes"},
        "plain_conv_gflops": conv_ref,
        "timing": "one warm-up fit, then the median of --repeats timed fits (repeats_seconds); includes batch sampling, flips, loss, backward, optimiser",
        "results": results,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "device": args.device, "torch": torch.__version__, "loadavg_1min_before": load0,
                    "loadavg_1min_after": loadavg()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(args.out, res)
    png = Path(args.out).with_suffix(".png")
    plot(res, png)
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
