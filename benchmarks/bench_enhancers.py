"""Benchmark: training and inference speed (images / s) of each learned enhancer on 48 x 48 faces.

Usage::

    .venv/bin/python benchmarks/bench_enhancers.py [--device cpu|cuda] [--batch 16]
        [--enhancers zerodce mirnet retinexnet llenet] [--train-presets cpu] [--infer-presets cpu paper]
        [--train-steps 8] [--infer-images 256] [--paper-train-steps 1] [--paper-infer-images 32]
        [--repeats 3] [--paper-repeats 1] [--threads N] [--out benchmarks/results/enhancers_speed.json]

For each learned enhancer (``ENHANCERS`` entries with ``learned = True``) and
preset, built exactly as ``params.yaml``'s ``learned.<E>.model: {preset: ...}``
builds it:

* **training**: ``LearnedEnhancer.fit`` (the loop ``train_enhancer`` runs:
  random batch, random 48 x 48 crop = the whole face, flip, loss, backward,
  Adam step, cosine schedule) on pairs (darkened x0.1, clean) of batch
  ``--batch``; a one-step warm-up fit, then a timed fit of ``--train-steps``
  iterations (RetinexNet: its two phases in the params' proportion), repeated
  ``--repeats`` times (median; ``--paper-repeats`` for the paper preset).
  images / s = steps x batch / seconds.
* **inference**: ``enhance(images, batch_size=--batch)`` on ``--infer-images``
  darkened faces after a 4-image warm-up (includes uint8 <-> float conversion).

Faces are seeded synthetic 48 x 48 gray faces (speed does not depend on the
content).  ``--device cuda`` runs the same on a GPU (``fit``'s per-step
``loss.item()`` and ``enhance``'s copy back to the host synchronise, so wall
time is honest).  Every timed number is one process on a machine that may be
shared: the 1-minute load average before and after is recorded.
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


def params_yaml_train() -> dict:
    """learned.<E>.train of params.yaml (optimizer / lr / patch reported next to the speed)."""
    import yaml

    p = yaml.safe_load((REPO / "params.yaml").read_text()) or {}
    return {k: (v or {}).get("train", {}) for k, v in (p.get("learned") or {}).items()}


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def bench_one(cls, preset: str, device: str, batch: int, train_steps: int, infer_images: int,
              low: np.ndarray, high: np.ndarray, train_cfg: dict, repeats: int = 1) -> dict:
    import torch

    from llfer.enhance.base import num_params

    torch.manual_seed(0)
    enh = cls(preset=preset)
    row: dict = {"preset": preset, "params": num_params(enh.model)}
    opt = {"optimizer": train_cfg.get("optimizer", "adam"), "lr": float(train_cfg.get("lr", 1e-4))}
    if train_steps > 0:
        kw = dict(batch_size=batch, patch=48, device=device, progress=False, **opt)
        enh.fit(low, high, iterations=1, **kw)  # warm-up (allocator, cuDNN autotune, lazy init)
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            hist = enh.fit(low, high, iterations=train_steps, **kw)
            runs.append(time.perf_counter() - t)
        dt = float(np.median(runs))
        row["train"] = {"steps": train_steps, "batch": batch, "seconds": round(dt, 3), "repeats_seconds": [round(r, 3) for r in runs],
                        "images_per_second": round(train_steps * batch / dt, 1),
                        "images_per_second_best": round(train_steps * batch / min(runs), 1),
                        "seconds_per_step": round(dt / train_steps, 4), "last_loss": hist[-1]["loss"], **opt}
    if infer_images > 0:
        x = low[:infer_images]
        enh.enhance(x[:4], batch_size=batch, device=device)  # warm-up (4 images)
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            y = enh.enhance(x, batch_size=batch, device=device)
            runs.append(time.perf_counter() - t)
        dt = float(np.median(runs))
        row["infer"] = {"images": int(len(x)), "batch": batch, "seconds": round(dt, 3), "repeats_seconds": [round(r, 3) for r in runs],
                        "images_per_second": round(len(x) / dt, 1), "images_per_second_best": round(len(x) / min(runs), 1),
                        "ms_per_image": round(1000 * dt / len(x), 3),
                        "output_shape": list(y.shape)}
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--enhancers", nargs="+", default=None, help="default: every learned enhancer")
    ap.add_argument("--train-presets", nargs="*", default=["cpu", "paper"])
    ap.add_argument("--infer-presets", nargs="*", default=["cpu", "paper"])
    ap.add_argument("--train-steps", type=int, default=8, help="timed training steps, cpu preset")
    ap.add_argument("--infer-images", type=int, default=256, help="timed inference images, cpu preset")
    ap.add_argument("--paper-train-steps", type=int, default=1, help="timed training steps, paper preset")
    ap.add_argument("--paper-infer-images", type=int, default=32, help="timed inference images, paper preset")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median reported), cpu preset")
    ap.add_argument("--paper-repeats", type=int, default=1, help="timed calls per measurement, paper preset")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "enhancers_speed.json"))
    args = ap.parse_args(argv)

    import torch

    import llfer.enhance  # noqa: F401  (registers the enhancers)
    from llfer.io import write_json
    from llfer.registry import ENHANCERS

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.enhancers or [n for n in ENHANCERS.names() if getattr(ENHANCERS.get(n), "learned", False)]
    n_img = max(args.infer_images, args.paper_infer_images, args.batch * 4)
    high = synthetic_faces(n_img)
    low = np.floor(high.astype(np.float64) * 0.1).astype(np.uint8)
    train_cfg = params_yaml_train()
    rows: dict = {}
    load0 = loadavg()
    print(f"device {args.device}, batch {args.batch}, 48x48 gray faces, torch threads {torch.get_num_threads()}")
    print(f"{'enhancer':10s} {'preset':6s} {'params':>10s} {'train img/s':>12s} {'infer img/s':>12s}")
    for name in names:
        cls = ENHANCERS.get(name)
        rows[name] = {}
        for preset in dict.fromkeys(args.train_presets + args.infer_presets):
            paper = preset == "paper"
            ts = (args.paper_train_steps if paper else args.train_steps) if preset in args.train_presets else 0
            ni = (args.paper_infer_images if paper else args.infer_images) if preset in args.infer_presets else 0
            r = bench_one(cls, preset, args.device, args.batch, ts, ni, low, high, train_cfg.get(name, {}),
                          repeats=args.paper_repeats if paper else args.repeats)
            rows[name][preset] = r
            tr = r.get("train", {}).get("images_per_second", float("nan"))
            inf = r.get("infer", {}).get("images_per_second", float("nan"))
            print(f"{name:10s} {preset:6s} {r['params']:10,d} {tr:12.1f} {inf:12.1f}", flush=True)
            if args.device == "cuda":
                torch.cuda.empty_cache()
    dev = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.device == "cuda":
        dev["gpu"] = torch.cuda.get_device_name(0)
    res = {
        "benchmark": "learned enhancers: training (LearnedEnhancer.fit) and inference (enhance) images per second",
        "images": "48x48 gray synthetic faces, darkened x0.1 (pairs for training); gray is repeated to 3 channels",
        "batch": args.batch,
        "train_patch": 48,
        "timing": "one warm-up, then the median wall time of the timed calls (repeats_seconds lists them); training includes batch sampling, crops, loss, backward, optimiser; images_per_second_best uses the fastest repeat (least disturbed by the other jobs on the shared cores)",
        "results": rows,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(), **dev,
                    "loadavg_1min_before": load0, "loadavg_1min_after": loadavg(),
                    "note": "2 CPU cores shared with other jobs; numbers vary with the load" if args.device == "cpu" else ""},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(args.out, res)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
