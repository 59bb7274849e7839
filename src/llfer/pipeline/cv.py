"""Stage ``cv``: stratified k-fold cross-validation of ``cv.backbone`` on ``cv.input``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..build import build_backbone
from ..config import Params
from ..device import resolve_device, seed_everything
from ..errors import DataError
from ..inputs import Roots, make_loader
from ..io import write_json
from ..metrics.classification import classification_metrics
from ..train.fer import predict, train_classifier
from .args import SubParsers, add_common, params_of, roots_of


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "cv"
OUTPUTS = ("out",)
INPUTS = ("prepared", "degraded", "enhanced")


def run_cv(p: Params, roots: Roots, out_json: Path, progress: bool = True) -> dict[str, Any]:
    """Stratified k-fold cross-validation of ``cv.backbone`` on ``cv.input`` over all splits pooled."""
    # imported here: scikit-learn's model_selection takes ~1.3 s to import, which every `llfer` command would pay
    from sklearn.model_selection import StratifiedKFold, train_test_split

    spec = p.input_def(p.cv.input)
    loader = make_loader(p, roots)
    classes = loader.classes()
    splits = ["train", "val", "test"]
    ds = loader.dataset("clean")
    present = [s for s in splits if ds.split_mask(s).any()]
    xtr_all, y_all, ids = loader.load(spec.train, present, train=True)
    xte_all, _, _ = loader.load(spec.test, present, train=False) if spec.test != spec.train else (xtr_all, None, None)
    n = len(y_all)
    sel = np.arange(n)
    if p.cv.max_images and n > p.cv.max_images:
        sel, _ = train_test_split(sel, train_size=p.cv.max_images, stratify=y_all, random_state=p.seed)
        sel = np.sort(sel)
    y = y_all[sel]
    counts = np.bincount(y, minlength=len(classes))
    k = min(p.cv.folds, int(counts[counts > 0].min()))
    if k < 2:
        raise DataError(f"cv: a class has fewer than 2 images; cannot run {p.cv.folds}-fold CV")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=p.seed)
    device = resolve_device(p.runtime.device)
    tcfg = p.fer.train.model_copy(update={"epochs": p.cv.epochs, "patience": 0})
    folds = []
    for f, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        seed_everything(p.seed + f)
        in_ch = 1 if xtr_all.ndim == 3 else xtr_all.shape[3]
        model, size = build_backbone(p, p.cv.backbone, len(classes), in_ch)
        res = train_classifier(model, (xtr_all[sel[tr]], y[tr]), None, tcfg, num_classes=len(classes), input_size=size,
                               device=device, seed=p.seed + f, progress=progress,
                               eval_batch_size=p.runtime.eval_batch_size, channels_last=p.runtime.channels_last)
        pred = predict(res.model, xte_all[sel[te]], size, device, p.runtime.eval_batch_size).argmax(1)
        m = classification_metrics(y[te], pred, classes)
        folds.append({"fold": f, "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4), "n": m["n"]})
    accs = np.array([r["accuracy"] for r in folds])
    out = {"backbone": p.cv.backbone, "input": p.cv.input, "folds": k, "epochs": p.cv.epochs, "images": int(len(y)),
           "accuracy_mean": round(float(accs.mean()), 4), "accuracy_std": round(float(accs.std(ddof=1)), 4),
           "macro_f1_mean": round(float(np.mean([r["macro_f1"] for r in folds])), 4), "per_fold": folds}
    write_json(out_json, out)
    return out


def command(args: argparse.Namespace) -> int:
    p = params_of(args)
    res = run_cv(p, roots_of(args, p), Path(args.out), progress=not args.no_progress)
    print(f"{res['folds']}-fold CV {res['backbone']}/{res['input']}: accuracy {res['accuracy_mean']:.4f} ± {res['accuracy_std']:.4f}")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="stratified k-fold cross-validation")
    add_common(sp)
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced")
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=command)
