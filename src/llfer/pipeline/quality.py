"""Stage ``quality``: PSNR / SSIM (vs the clean image) and NIQE of every enhancer's output."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import plots
from ..build import apply_enhancer, build_enhancer
from ..config import Params
from ..data.store import read_dataset
from ..device import resolve_device
from ..errors import DataError
from ..io import atomic_dir, write_json
from ..metrics.niqe import niqe
from ..metrics.quality import psnr, ssim
from ..workers import from_root
from .args import SubParsers, add_common, params_of
from .enhance import enhanced_outputs


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "quality"
OUTPUTS = ("out", "plots")
INPUTS = ("prepared", "degraded", "enhanced", "models")


def run_quality(p: Params, prepared: Path, degraded: Path, enhanced_root: Path, out_json: Path,
                plots_dir: Path, models_root: Path | None = None, enhancers: list[str] | None = None) -> dict[str, Any]:
    """PSNR / SSIM (vs the clean image) and NIQE of every enhancer's output on each enhanced variant.

    The degraded input itself is a row (``input``).  Writes ``out_json`` and a
    sample-grid PNG per variant (clean / degraded / each enhancer on the same faces).
    Each prepared unpaired low-light set in ``quality.unpaired`` adds a key
    ``unpaired:<dirname>`` with the NIQE of its photos and of every enhancer's
    output on them (:func:`unpaired_niqe`; the learned enhancers when ``models_root``
    is given).  The enhancers scored are those params list (or ``enhancers``),
    never whatever folders ``enhanced_root`` holds; a missing output is an error.
    """
    clean = read_dataset(prepared)
    idx = clean.split_indices(p.quality.split)
    if len(idx) == 0:
        raise DataError(f"{prepared}: split {p.quality.split!r} is empty")
    ref = np.asarray(clean.images[idx])
    outputs = enhanced_outputs(p, Path(enhanced_root), enhancers)
    rng = np.random.default_rng(p.seed)
    niqe_idx = np.sort(rng.choice(len(idx), min(len(idx), p.quality.niqe_max_images), replace=False))
    grid_idx = np.sort(rng.choice(len(idx), min(len(idx), p.quality.grid_images), replace=False))
    result: dict[str, Any] = {}
    grids: dict[str, list[tuple[str, np.ndarray]]] = {}

    def score(imgs: np.ndarray) -> dict[str, float]:
        row = {"psnr": float(np.mean(np.minimum(psnr(imgs, ref), 100.0))), "ssim": float(np.mean(ssim(imgs, ref)))}
        if p.quality.niqe:
            row["niqe"] = float(np.nanmean(niqe(imgs[niqe_idx], upsample=p.quality.niqe_upsample)))
        return row

    result_clean = {"niqe": float(np.nanmean(niqe(ref[niqe_idx], upsample=p.quality.niqe_upsample)))} if p.quality.niqe else {}
    for v in p.enhance.variants:
        dv = read_dataset(degraded / v)
        low = np.asarray(dv.images[idx])
        rows = {"input": score(low)}
        grids[v] = [("clean", ref[grid_idx]), (v, low[grid_idx])]
        for e, root in outputs.items():
            d = root / v
            ed = read_dataset(d)
            e_idx = ed.split_indices(p.quality.split)
            if ed.index["id"].iloc[e_idx].tolist() != clean.index["id"].iloc[idx].tolist():
                raise DataError(f"{d}: its {p.quality.split!r} images do not pair with {prepared} (re-run enhance)")
            ev = np.asarray(ed.images[e_idx])
            rows[e] = score(ev)
            grids[v].append((e, ev[grid_idx]))
        result[v] = rows
    if result_clean:
        result["clean"] = {"reference": result_clean}
    for d in p.quality.unpaired:
        # relative: against the repository, also inside a queued experiment's temporary copy
        result[f"unpaired:{Path(d).name}"] = unpaired_niqe(p, from_root(d), models_root)
    write_json(out_json, result)
    with atomic_dir(plots_dir) as tmp:
        for v, cols in grids.items():
            plots.sample_grid(cols, tmp / f"{v}.png", title=f"{v}: clean / degraded / enhancers")
        pd.DataFrame([{"variant": v, "method": m, **s} for v, rows in result.items() for m, s in rows.items()]) \
            .to_csv(tmp / "quality.csv", index=False)
    return result


def unpaired_niqe(p: Params, directory: Path, models_root: Path | None = None) -> dict[str, dict[str, float]]:
    """NIQE (no reference) of an unpaired low-light set and of each enhancer's output on it.

    ``directory`` is a prepared dataset (``llfer prepare --dataset unpaired``).
    Up to ``quality.niqe_max_images`` photos (a fixed random choice, seed
    ``seed``) are scored as they are (row ``input``), then after every classical
    enhancer and, when ``models_root`` is given, every learned one in params (its checkpoint
    ``models_root/<name>/model.safetensors`` must exist).
    Photos smaller than 192 px (two 96 px NIQE blocks) are upsampled by
    ``quality.niqe_upsample``.  Computed whenever the set is listed, whatever
    ``quality.niqe`` says (NIQE is the only score without a reference).
    """
    if not (directory / "images.npy").exists():
        raise DataError(f"quality.unpaired: {directory} is not a prepared dataset "
                        "(make it with `llfer prepare --dataset unpaired --source DIR --out DIR`)")
    ds = read_dataset(directory)
    n = len(ds.images)
    if n == 0:
        raise DataError(f"quality.unpaired: {directory} holds no images")
    sel = np.sort(np.random.default_rng(p.seed).choice(n, min(n, p.quality.niqe_max_images), replace=False))
    low = np.asarray(ds.images[sel])
    h, w = low.shape[1:3]
    up = 1 if min(h, w) >= 192 else p.quality.niqe_upsample
    # keep about as many pixels per batch as runtime.enhance_batch_size 48 x 48 faces
    bs = max(1, min(p.runtime.enhance_batch_size, p.runtime.enhance_batch_size * 48 * 48 // (h * w)))
    device = resolve_device(p.runtime.device)
    rows = {"input": {"niqe": float(np.nanmean(niqe(low, upsample=up)))}}
    names = list(p.classical)
    if models_root is not None:  # every learned enhancer in params, each with its checkpoint
        for e in p.learned:
            if not (Path(models_root) / e / "model.safetensors").exists():
                raise DataError(f"{Path(models_root) / e / 'model.safetensors'}: missing; params list learned "
                                f"enhancer {e!r} (run train_enhancer@{e}: dvc repro)")
        names += list(p.learned)
    for e in names:
        if e in ("identity", "none"):
            continue
        enh = build_enhancer(p, e, Path(models_root) / e if e in p.learned else None)
        rows[e] = {"niqe": float(np.nanmean(niqe(apply_enhancer(enh, low, device, bs), upsample=up)))}
    return rows


def command(args: argparse.Namespace) -> int:
    res = run_quality(params_of(args), Path(args.prepared), Path(args.degraded), Path(args.enhanced),
                      Path(args.out), Path(args.plots), Path(args.models) if args.models else None)
    for v, rows in res.items():
        for m, s in rows.items():
            print(f"{v:>12} {m:<12} " + " ".join(f"{k}={x:.4f}" for k, x in s.items()))
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="PSNR / SSIM / NIQE of every enhancer")
    add_common(sp)
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced", required=True, help="root holding one directory per enhancer")
    sp.add_argument("--models", help="root of trained enhancer models (learned enhancers on quality.unpaired sets)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--plots", required=True)
    sp.set_defaults(func=command)
