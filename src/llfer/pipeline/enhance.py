"""Stages ``enhance@<name>`` / ``enhance_classical@<name>``: apply an enhancer to the degraded variants."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..build import apply_enhancer, build_enhancer
from ..config import Params
from ..data.store import read_dataset, write_dataset
from ..device import resolve_device
from ..errors import DataError
from ..io import atomic_dir
from .args import SubParsers, add_common, params_of


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "enhance"
OUTPUTS = ("out",)
INPUTS = ("degraded", "model")


def enhanced_splits(p: Params, variant: str) -> list[str] | None:
    """Splits an enhancer processes for ``variant``: all (None) for ``enhance.all_splits`` variants
    (the FER "enhanced" input trains on them), else only ``enhance.split`` (what quality and
    test-time enhancement score), which saves most of the learned enhancers' inference time."""
    return None if variant in p.enhance.all_splits else [p.enhance.split]


def enhancer_names(p: Params) -> list[str]:
    """The enhancers params configure (``classical`` and ``learned``), sorted: what quality and evaluate score."""
    return sorted(set(p.classical) | set(p.learned))


def enhanced_outputs(p: Params, enhanced_root: Path, names: list[str] | None = None) -> dict[str, Path]:
    """``name -> enhanced_root/name`` for the enhancers in params (or ``names``), each checked to hold every
    variant of ``enhance.variants``.  Aggregating stages read this list, never the folder listing, so a
    leftover folder of an enhancer params no longer lists is not scored, and a missing one is an error."""
    out = {e: Path(enhanced_root) / e for e in (enhancer_names(p) if names is None else names)}
    missing = [d / v for e, d in out.items() for v in p.enhance.variants if not (d / v / "meta.json").exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: no enhanced data{more}; params list enhancer {missing[0].parent.name!r} "
                        "(run its enhance stage: dvc repro)")
    return out


def run_enhance(p: Params, name: str, degraded: Path, out: Path, model_dir: Path | None = None) -> dict[str, Any]:
    """Apply enhancer ``name`` to every variant in ``enhance.variants``; write ``out/<variant>/``."""
    enh = build_enhancer(p, name, model_dir)
    device = resolve_device(p.runtime.device)
    info = {}
    with atomic_dir(out) as tmp:
        for v in tqdm(p.enhance.variants, desc=f"enhance {name}", mininterval=1):
            dv = read_dataset(degraded / v)
            splits = enhanced_splits(p, v)
            rows = np.flatnonzero(dv.index["split"].isin(splits).to_numpy()) if splits else np.arange(len(dv.index))
            t0 = time.perf_counter()
            imgs = apply_enhancer(enh, np.asarray(dv.images[rows]), device, p.runtime.enhance_batch_size)
            secs = time.perf_counter() - t0
            write_dataset(tmp / v, imgs, dv.index.iloc[rows], classes=dv.classes,
                          provenance={"enhancer": name, "variant": v, "source": str(degraded / v),
                                      "splits": splits or "all"})
            info[v] = {"seconds": round(secs, 3), "images_per_second": round(len(imgs) / max(secs, 1e-9), 1)}
    return info


def command(args: argparse.Namespace) -> int:
    info = run_enhance(params_of(args), args.name, Path(args.degraded), Path(args.out),
                       Path(args.model) if args.model else None)
    print(f"enhanced with {args.name} -> {args.out}: {', '.join(info)}")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="apply an enhancer to the degraded variants")
    add_common(sp)
    sp.add_argument("name")
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--model", help="trained model directory (learned enhancers)")
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=command)
