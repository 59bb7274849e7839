"""Stage ``train_enhancer@<name>``: train a learned enhancer on (degraded, clean) train pairs."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..build import learned_enhancer_class
from ..config import Params
from ..data.store import read_dataset
from ..device import resolve_device, seed_everything
from ..enhance.base import num_params
from ..errors import ConfigError, DataError
from ..io import atomic_dir
from ..runfacts import record
from ..workers import from_root
from .args import SubParsers, add_common, params_of


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "train-enhancer"
log = logging.getLogger("llfer")
OUTPUTS = ("out", "plots")
INPUTS = ("prepared", "degraded")


def training_pairs(p: Params, prepared: Path, degraded: Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Training pairs (low, high): a prepared LOL set's own low/normal-light pairs when it has them
    (``extras["low"]``, from the ``lol`` reader), else each of ``enhance.variants`` with its clean image."""
    clean = read_dataset(prepared)
    idx = clean.split_indices(split)
    if "low" in clean.extras:
        if len(idx) == 0:
            raise DataError(f"{prepared}: no {split!r} pairs")
        return np.asarray(clean.extras["low"][idx]), np.asarray(clean.images[idx])
    lows, highs = [], []
    for v in p.enhance.variants:
        dv = read_dataset(degraded / v)
        if dv.images.shape[1:] != clean.images.shape[1:]:
            raise ConfigError(f"enhance.variants: {v!r} has size {dv.images.shape[1:3]}, not the clean size; "
                              "enhancers need same-size pairs")
        lows.append(np.asarray(dv.images[idx]))
        highs.append(np.asarray(clean.images[idx]))
    return np.concatenate(lows), np.concatenate(highs)


def _subset(low: np.ndarray, high: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed seeded subset of at most ``n`` pairs (all when ``n`` is None or larger)."""
    if n and len(low) > n:
        sel = np.sort(np.random.default_rng(seed).choice(len(low), n, replace=False))
        return low[sel], high[sel]
    return low, high


def run_train_enhancer(p: Params, name: str, prepared: Path, degraded: Path, out: Path,
                       plots: Path | None = None) -> dict[str, Any]:
    """Train learned enhancer ``name`` on (degraded, clean) train pairs, validated on the val split's pairs;
    write ``out/model.safetensors``, ``summary.json`` and the validation curve ``history.csv`` (a DVC plot)."""
    if name not in p.learned:
        raise ConfigError(f"learned: no learned enhancer {name!r}; allowed: {', '.join(sorted(p.learned))}")
    lc = p.learned[name]
    cls = learned_enhancer_class(name)
    low, high = _subset(*training_pairs(p, prepared, degraded), lc.train.max_pairs, p.seed)
    val = None
    if len(read_dataset(prepared).split_indices("val")):
        val = _subset(*training_pairs(p, prepared, degraded, "val"), lc.train.max_val, p.seed)
    else:
        log.warning("train_enhancer@%s: %s has no 'val' split; the last weights are kept (no validation)", name, prepared)
    seed_everything(p.seed)
    enh = cls(**lc.model)
    if lc.init:
        enh.init_from(from_root(lc.init))  # relative: against the repository, also in a queued experiment
    device = resolve_device(p.runtime.device)
    t0 = time.perf_counter()
    tc = lc.train.model_dump(exclude={"max_pairs", "max_val"})
    history = enh.fit(low, high, val=val, seed=p.seed, device=device, channels_last=p.runtime.channels_last, **tc)
    secs = time.perf_counter() - t0
    res = enh.fit_result
    last = [r for r in history if "val_psnr" in r]
    # The summary is hashed by DVC (and stored in the checkpoint): results only.  Speed and device are run
    # facts (metrics/timing/<stage>.json, see llfer.runfacts).
    summary = {"enhancer": name, "pairs": int(len(low)), "val_pairs": int(len(val[0])) if val else 0,
               "steps": tc["steps"], "steps_run": res.steps_done, "stopped_early": res.stopped_early,
               "best_step": res.best_step, "params": num_params(enh.model),
               "first_loss": history[0]["train_loss"] if history else None,
               "last_loss": history[-1]["train_loss"] if history else None,
               "val_psnr_first": round(last[0]["val_psnr"], 4) if last else None,
               "val_psnr_best": round(max(r["val_psnr"] for r in last), 4) if last else None,
               "init": lc.init}
    record(train_seconds=round(secs, 2), images_per_second=round(res.steps_done * tc["batch_size"] / max(secs, 1e-9), 1),
           device=str(device))
    with atomic_dir(out) as tmp:
        enh.save(tmp / "model.safetensors", extra=summary)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
    if plots is not None:
        with atomic_dir(plots) as tmp:
            pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
    return summary


def command(args: argparse.Namespace) -> int:
    s = run_train_enhancer(params_of(args), args.name, Path(args.prepared), Path(args.degraded), Path(args.out),
                           Path(args.plots) if args.plots else None)
    psnr = f", val PSNR {s['val_psnr_first']} -> best {s['val_psnr_best']} dB (step {s['best_step']})" if s["val_psnr_best"] else ""
    loss = f"loss {s['first_loss']:.4f} -> {s['last_loss']:.4f}" if s["first_loss"] is not None else "no step run (train.steps 0)"
    print(f"trained {args.name}: {loss}{psnr} -> {args.out}")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="train a learned enhancer on (degraded, clean) pairs")
    add_common(sp)
    sp.add_argument("name")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--plots", help="folder for the validation curve (history.csv, a DVC plot)")
    sp.set_defaults(func=command)
