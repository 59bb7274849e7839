"""Stage ``train_enhancer@<name>``: train a learned enhancer on (degraded, clean) train pairs."""

from __future__ import annotations

import argparse
import json
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
OUTPUTS = ("out",)
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


def run_train_enhancer(p: Params, name: str, prepared: Path, degraded: Path, out: Path) -> dict[str, Any]:
    """Train learned enhancer ``name`` on (degraded, clean) train pairs; write ``out/model.safetensors``."""
    if name not in p.learned:
        raise ConfigError(f"learned: no learned enhancer {name!r}; allowed: {', '.join(sorted(p.learned))}")
    lc = p.learned[name]
    cls = learned_enhancer_class(name)
    low, high = training_pairs(p, prepared, degraded)
    if lc.train.max_pairs and len(low) > lc.train.max_pairs:
        sel = np.sort(np.random.default_rng(p.seed).choice(len(low), lc.train.max_pairs, replace=False))
        low, high = low[sel], high[sel]
    seed_everything(p.seed)
    enh = cls(**lc.model)
    if lc.init:
        enh.init_from(from_root(lc.init))  # relative: against the repository, also in a queued experiment
    device = resolve_device(p.runtime.device)
    t0 = time.perf_counter()
    tc = lc.train.model_dump(exclude={"max_pairs"})
    history = enh.fit(low, high, seed=p.seed, device=device, **tc)
    secs = time.perf_counter() - t0
    # The summary is hashed by DVC (and stored in the checkpoint): results only.  Speed and device are run
    # facts (metrics/timing/<stage>.json, see llfer.runfacts).
    summary = {"enhancer": name, "pairs": int(len(low)), "iterations": tc["iterations"], "params": num_params(enh.model),
               "first_loss": history[0]["loss"] if history else None, "last_loss": history[-1]["loss"] if history else None,
               "init": lc.init}
    record(train_seconds=round(secs, 2), images_per_second=round(tc["iterations"] * tc["batch_size"] / max(secs, 1e-9), 1),
           device=str(device))
    with atomic_dir(out) as tmp:
        enh.save(tmp / "model.safetensors", extra=summary)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
    return summary


def command(args: argparse.Namespace) -> int:
    s = run_train_enhancer(params_of(args), args.name, Path(args.prepared), Path(args.degraded), Path(args.out))
    print(f"trained {args.name}: loss {s['first_loss']:.4f} -> {s['last_loss']:.4f} -> {args.out}")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="train a learned enhancer on (degraded, clean) pairs")
    add_common(sp)
    sp.add_argument("name")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=command)
