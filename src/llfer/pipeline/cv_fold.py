"""Stages ``cv_fold@<run>-<fold>`` / ``cv_fold_enhanced@<run>-<fold>``: train and score one fold of the
k-fold cross-validation of a ``<backbone>-<input>`` run (``cv.runs``, ``cv.enhanced_runs``).

The folds are drawn over the images of all splits pooled (at most ``cv.max_images``, a fixed
class-stratified subset).  Protocol (``cv.protocol``): ``subject`` keeps every subject's images in
one fold (scikit-learn's ``StratifiedGroupKFold`` on the ``subject`` column), so no face of a test
subject is seen in training; ``stratified`` is the papers' plain ``StratifiedKFold`` ([sobel-alexnet],
[efc-lowres]), which puts frames of the same person on both sides; ``auto`` takes ``subject`` when every
image has a subject id and otherwise ``stratified``, saying so in the log and in the output.  Every
fold stage computes the same assignment (fixed seed), so folds run as independent DVC stages, side
by side in a DVC queue or on several GPUs.

Training images get the run's train spec, the test fold only its test spec (a train-only
preprocessor such as ``salt_pepper`` never touches a test fold).  A class with fewer images than
folds, or fewer subjects than folds, is an error naming it.  The output is one JSON file per fold
(labels and predictions of its test images, accuracy, macro-F1); stage ``cv`` aggregates them.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..build import build_backbone
from ..config import Params
from ..device import resolve_device, seed_everything
from ..errors import ConfigError, DataError
from ..inputs import InputLoader, Roots, make_loader, stratified_subset
from ..io import write_json
from ..metrics.classification import classification_metrics
from ..runfacts import record
from ..train.fer import predict, train_classifier
from .args import SubParsers, add_common, params_of, roots_of

log = logging.getLogger("llfer")

#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "cv-fold"
OUTPUTS = ("out",)
INPUTS = ("prepared", "degraded", "enhanced")

SPLITS = ("train", "val", "test")


@dataclass
class FoldPlan:
    """The images cross-validated (positions in the pooled splits), their labels and subjects, and the folds."""

    rows: np.ndarray            # positions in the pooled (train, val, test) images
    labels: np.ndarray
    subjects: np.ndarray        # str; "" where unknown
    protocol: str               # "subject" or "stratified" (what was used)
    folds: list[tuple[np.ndarray, np.ndarray]]   # (train, test) positions into ``rows``
    note: str = ""              # why ``auto`` fell back to stratified


def pooled_index(loader: InputLoader) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The splits present, and the labels and subject ids of their images, pooled in index order
    (the order in which :meth:`InputLoader.load` returns the images of those splits)."""
    ds = loader.dataset("clean")
    present = [s for s in SPLITS if ds.split_mask(s).any()]
    idx = np.flatnonzero(ds.index["split"].isin(present).to_numpy())
    subjects = ds.index["subject"].iloc[idx].fillna("").astype(str).str.strip().to_numpy()
    return present, ds.labels[idx], subjects


def plan_folds(p: Params, labels: np.ndarray, subjects: np.ndarray, classes: list[str]) -> FoldPlan:
    """The fold assignment of ``cv`` params over images with ``labels`` / ``subjects`` (deterministic)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    k = len(p.cv.folds)
    rows = stratified_subset(labels, p.cv.max_images, p.seed)
    y, subj = labels[rows], subjects[rows]
    counts = np.bincount(y, minlength=len(classes))
    for c in np.flatnonzero((counts > 0) & (counts < k)):
        raise DataError(f"cv: class {classes[c]!r} has {counts[c]} image(s) among the {len(rows)} cross-validated, "
                        f"fewer than cv.folds ({k} folds); lower the number of folds or raise cv.max_images")
    protocol, note = p.cv.protocol, ""
    have_subjects = bool(len(subj)) and all(subj != "")
    if protocol == "auto":
        protocol = "subject" if have_subjects else "stratified"
        if not have_subjects:
            note = (f"{int((subj == '').sum())} of {len(subj)} images have no subject id: plain stratified folds "
                    "(images of one person may lie in training and test folds)")
            log.warning("cv: %s", note)
    if protocol == "subject":
        if not have_subjects:
            raise DataError(f"cv.protocol: subject: {int((subj == '').sum())} of {len(subj)} images have no subject id "
                            "(use protocol stratified or auto)")
        n_subj = len(np.unique(subj))
        if n_subj < k:
            raise DataError(f"cv.protocol: subject: {n_subj} subjects are fewer than cv.folds ({k} folds)")
        groups = np.unique(subj, return_inverse=True)[1]
        splitter: Any = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=p.seed)
        folds = list(splitter.split(np.zeros(len(y)), y, groups))
    else:
        folds = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=p.seed).split(np.zeros(len(y)), y))
    for f, (tr, te) in enumerate(folds):
        if len(te) == 0 or len(np.unique(y[tr])) < 2:
            raise DataError(f"cv: fold {f} has an empty test part or fewer than 2 classes to train on "
                            f"({len(rows)} images, {k} folds); lower the number of folds")
    return FoldPlan(rows=rows, labels=y, subjects=subj, protocol=protocol, folds=folds, note=note)


def run_cv_fold(p: Params, run: str, fold: int, roots: Roots, out_json: Path, progress: bool = True) -> dict[str, Any]:
    """Train run ``run`` (``<backbone>-<input>``) on the other folds and score it on fold ``fold``."""
    if run not in p.cv.runs + p.cv.enhanced_runs:
        raise ConfigError(f"cv: run {run!r} is not in cv.runs or cv.enhanced_runs "
                          f"({', '.join(p.cv.runs + p.cv.enhanced_runs) or 'both empty'})")
    if fold not in p.cv.folds:
        raise ConfigError(f"cv: fold {fold} is not in cv.folds (0..{len(p.cv.folds) - 1})")
    backbone, input_name = p.split_run(run, "cv.runs")
    spec = p.input_def(input_name)
    loader = make_loader(p, roots)
    classes = loader.classes()
    present, labels, subjects = pooled_index(loader)
    plan = plan_folds(p, labels, subjects, classes)
    tr, te = plan.folds[fold]
    # the train spec for the training folds, only the test spec (train=False) for the test fold
    x_train, _, _ = loader.load(spec.train, present, train=True)
    x_test, _, _ = loader.load(spec.test, present, train=False)
    x_train, x_test = x_train[plan.rows[tr]], x_test[plan.rows[te]]
    y_train, y_test = plan.labels[tr], plan.labels[te]
    soft = (loader.extra("soft_labels", present, "fer.train.soft_labels")[plan.rows[tr]]
            if p.fer.train.soft_labels else None)
    seed = p.seed + fold
    seed_everything(seed)
    in_ch = 1 if x_train.ndim == 3 else x_train.shape[3]
    model, size = build_backbone(p, backbone, classes, in_ch)
    device = resolve_device(p.runtime.device)
    tcfg = p.fer.train.model_copy(update={"epochs": p.cv.epochs, "patience": 0})
    t0 = time.perf_counter()
    res = train_classifier(model, (x_train, y_train), None, tcfg, num_classes=len(classes), input_size=size,
                           device=device, seed=seed, progress=progress, eval_batch_size=p.runtime.eval_batch_size,
                           channels_last=p.runtime.channels_last, soft=soft)
    pred = predict(res.model, x_test, size, device, p.runtime.eval_batch_size, tcfg.tta_flip,
                   tcfg.tta_shift).argmax(1)
    record(fold_seconds=round(time.perf_counter() - t0, 2), device=str(device))
    m = classification_metrics(y_test, pred, classes)
    shared = sorted(set(plan.subjects[tr]) & set(plan.subjects[te]) - {""})
    out = {"run": run, "backbone": backbone, "input": input_name, "fold": fold, "folds": len(plan.folds),
           "protocol": plan.protocol, "protocol_note": plan.note, "epochs": p.cv.epochs, "images": int(len(plan.rows)),
           "train_images": int(len(tr)), "test_images": int(len(te)),
           "subjects_shared": len(shared), "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
           "classes": classes, "true": y_test.tolist(), "pred": pred.tolist()}
    write_json(out_json, out)
    return out


def command(args: argparse.Namespace) -> int:
    p = params_of(args)
    r = run_cv_fold(p, args.run, args.fold, roots_of(args, p), Path(args.out), progress=not args.no_progress)
    print(f"{r['run']} fold {r['fold']}/{r['folds']} ({r['protocol']}): accuracy {r['accuracy']:.4f}, "
          f"macro-F1 {r['macro_f1']:.4f} on {r['test_images']} images")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="train and score one fold of a run's k-fold cross-validation")
    add_common(sp)
    sp.add_argument("run", help="<backbone>-<input>, listed in cv.runs or cv.enhanced_runs")
    sp.add_argument("fold", type=int, help="fold index, 0 .. k-1 (cv.folds)")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced", help="directory of the selected enhancer's output (for enhanced inputs)")
    sp.add_argument("--out", required=True, help="fold result (JSON)")
    sp.set_defaults(func=command)
