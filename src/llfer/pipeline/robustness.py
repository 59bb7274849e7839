"""Stage ``robustness``: accuracy of every trained classifier, after every enhancer of
``robustness.enhancers`` (test-time), as light or resolution falls.

Three curves on a fixed class-stratified subset of the clean test faces:

* ``brightness``: PIL ``ImageEnhance.Brightness`` darkening by each factor of ``robustness.brightness``
  ([mirnet-fer]; 1.0 is the clean face);
* ``gamma``: [ll-fer] eq. 14, ``beta * (alpha * I) ** gamma`` with each fixed gamma of
  ``robustness.gamma`` and alpha, beta drawn per face from ``degrade.dark_gamma`` (per-face draws as
  the ``dark_gamma`` variant makes them);
* ``resolution``: the face downscaled to each size of ``robustness.resolution`` ([efc-lowres]) with
  ``degrade.lowres.interpolation``, then brought back to its stored size (bilinear) so that every
  enhancer sees a face of the usual size.

For each curve level the degraded faces go through each enhancer, then through the run's own
test-time transform: the downscale of a low-resolution run (a run trained on ``lowres_10`` sees
10 px faces) and the run's preprocessors (``he``, ``sobel3``, ...; train-only ones such as
``salt_pepper`` do nothing at test time).  The run's own darkening or enhancement is replaced by
the curve's.  Outputs: ``robustness.json`` (run -> curve -> enhancer -> level -> accuracy),
per curve a folder of ``<run>.csv`` (``enhancer, <curve>, accuracy``: DVC draws one line per
enhancer) and a PNG per run with the three curves.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import plots
from ..build import apply_enhancer, build_enhancer
from ..checkpoint import load_classifier
from ..config import DarkGammaCfg, Params
from ..data.store import read_dataset
from ..degrade import apply_steps, dark_gamma, dark_pil, expand_variants, resize_images
from ..device import resolve_device
from ..errors import DataError
from ..inputs import parse_spec, stratified_subset
from ..io import atomic_dir, write_json
from ..preprocess import apply_preprocessors
from ..train.fer import predict
from .args import SubParsers, add_common, fer_runs, params_of

#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "robustness"
OUTPUTS = ("out", "plots")
INPUTS = ("models", "prepared", "enhancer_models")

CURVES = ("brightness", "gamma", "resolution")


def test_subset(p: Params, prepared: Path, max_images: int | None) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """A fixed class-stratified subset of the clean test split: images, labels, ids, classes."""
    ds = read_dataset(prepared)
    idx = ds.split_indices("test")
    if len(idx) == 0:
        raise DataError(f"{prepared}: the test split is empty")
    idx = idx[stratified_subset(ds.labels[idx], max_images, p.seed)]
    return (np.asarray(ds.images[idx]), ds.labels[idx], ds.index["id"].iloc[idx].astype(str).tolist(), ds.classes)


def degrade_level(p: Params, curve: str, level: float, images: np.ndarray, ids: list[str]) -> np.ndarray:
    """The test faces at one level of a curve (see the module docstring)."""
    if curve == "brightness":
        return dark_pil(images, ids=ids, seed=p.seed, factor=float(level))
    if curve == "gamma":
        g = p.degrade.dark_gamma or DarkGammaCfg()
        return dark_gamma(images, ids=ids, seed=p.seed, alpha=g.alpha, beta=g.beta, gamma=[float(level), float(level)])
    size = images.shape[1]
    interp = p.degrade.lowres.interpolation if p.degrade.lowres else "area"
    return resize_images(resize_images(images, int(level), interp), size, "bilinear")


def run_transform(p: Params, test_spec: str) -> tuple[list[Any], list[str]]:
    """A run's own test-time transform: the downscale steps of its source (a ``lowres_<px>`` run) and
    its preprocessors."""
    src, preps = parse_spec(test_spec, p.variant_names(), p.enhance.variants)
    steps = expand_variants(p.degrade.model_dump()).get(src, []) if not src.startswith("enhanced") else []
    return [s for s in steps if s.type == "lowres"], preps


def levels(p: Params, curve: str) -> list[float]:
    return list(getattr(p.robustness, curve))


def run_robustness(p: Params, models_root: Path, prepared: Path, enhancer_models: Path, out_json: Path,
                   plots_dir: Path) -> dict[str, Any]:
    """Accuracy of every run (:func:`fer_runs`) x enhancer x curve level; see the module docstring."""
    runs = fer_runs(p)
    classifiers = {}
    for r in runs:
        ck = Path(models_root) / r / "model.safetensors"
        if not ck.exists():
            raise DataError(f"{ck}: missing; params list FER run {r!r} (run its train_fer stage: dvc repro)")
        classifiers[r] = load_classifier(ck)
    images, labels, ids, classes = test_subset(p, Path(prepared), p.robustness.max_images)
    device = resolve_device(p.runtime.device)
    enhancers = {e: build_enhancer(p, e, Path(enhancer_models) / e if e in p.learned else None)
                 for e in p.robustness.enhancers}
    transforms = {r: run_transform(p, cfg["test_spec"]) for r, (_, cfg) in classifiers.items()}
    for r, (model, cfg) in classifiers.items():
        if cfg.get("classes") not in (None, classes):
            raise DataError(f"{Path(models_root) / r / 'model.safetensors'}: trained on classes {cfg['classes']}, "
                            f"not those of {prepared} (re-run train_fer)")
        model.to(device)
    out: dict[str, Any] = {r: {c: {e: {} for e in enhancers} for c in CURVES} for r in runs}
    with torch.inference_mode():
        for curve in CURVES:
            for level in levels(p, curve):
                low = degrade_level(p, curve, level, images, ids)
                for e, enh in enhancers.items():
                    x = apply_enhancer(enh, low, device, p.runtime.enhance_batch_size)
                    for r, (model, cfg) in classifiers.items():
                        steps, preps = transforms[r]
                        xr = apply_steps(x, ids, steps, p.seed) if steps else x
                        if preps:
                            xr = apply_preprocessors(preps, xr, ids=ids, train=False, seed=p.seed, params=p.fer.preprocess)
                        size = int(cfg["options"].get("input_size", 48))
                        pred = predict(model, xr, size, device, p.runtime.eval_batch_size).argmax(1)
                        out[r][curve][e][_key(level)] = round(float((pred == labels).mean()), 4)
    write_json(out_json, out)
    with atomic_dir(plots_dir) as tmp:
        for curve in CURVES:
            (tmp / curve).mkdir()
            for r in runs:
                rows = [{"enhancer": e, curve: float(lv), "accuracy": a}
                        for e, by in out[r][curve].items() for lv, a in by.items()]
                pd.DataFrame(rows, columns=["enhancer", curve, "accuracy"]).to_csv(tmp / curve / f"{r}.csv", index=False)
        (tmp / "png").mkdir()
        for r in runs:
            plots.robustness_curves(out[r], tmp / "png" / f"{r}.png",
                                    title=f"{r}: accuracy on {len(labels)} test faces after each enhancer")
    return out


def _key(level: float) -> str:
    return f"{float(level):g}"


def command(args: argparse.Namespace) -> int:
    res = run_robustness(params_of(args), Path(args.models), Path(args.prepared), Path(args.enhancer_models),
                         Path(args.out), Path(args.plots))
    for r, curves in res.items():
        for curve, by in curves.items():
            for e, accs in by.items():
                print(f"{r:<32} {curve:<10} {e:<10} " + " ".join(f"{k}:{v:.3f}" for k, v in accs.items()))
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="accuracy of every classifier x enhancer as light or resolution falls")
    add_common(sp)
    sp.add_argument("--models", required=True, help="root of the trained FER runs (<backbone>-<input>/)")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--enhancer-models", required=True, help="root of the trained learned enhancers (<name>/)")
    sp.add_argument("--out", required=True, help="robustness.json")
    sp.add_argument("--plots", required=True, help="folder for the curves (<curve>/<run>.csv, png/<run>.png)")
    sp.set_defaults(func=command)
