"""Stage ``cv``: aggregate the k-fold cross-validation folds (``cv_fold@<run>-<fold>``) of every run.

Per run: accuracy and macro-F1 of every fold, their mean and standard deviation (``ddof=1``), the
protocol (subject-independent or plain stratified), the images, epochs and subjects shared between
training and test folds, and the confusion matrix summed over the folds (every image is tested
once), as DVC ``confusion`` data and a PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .. import plots
from ..config import Params
from ..errors import DataError
from ..io import atomic_dir, read_json, write_json
from ..metrics.classification import classification_metrics, confusion_rows
from .args import SubParsers, add_common, params_of


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "cv"
OUTPUTS = ("out", "plots")
INPUTS = ("folds",)

#: what every fold file must hold (numbers, lists of class indices)
_FOLD_KEYS = ("accuracy", "macro_f1", "true", "pred", "classes", "protocol", "images", "epochs", "train_images",
              "subjects_shared")


def fold_file(root: Path, run: str, fold: int) -> Path:
    """Where stage ``cv_fold@<run>-<fold>`` writes its result."""
    return Path(root) / run / f"fold_{fold}.json"


def _read_fold(f: Path, run: str, fold: int) -> dict[str, Any]:
    if not f.exists():
        raise DataError(f"{f}: missing; params list fold {fold} of CV run {run!r} (run cv_fold@{run}-{fold}: dvc repro)")
    d = read_json(f, kind=dict)
    missing = [k for k in _FOLD_KEYS if k not in d]
    if missing or d.get("run") != run or d.get("fold") != fold or len(d["true"]) != len(d["pred"]):
        raise DataError(f"{f}: not the result of fold {fold} of CV run {run!r} "
                        f"({'no ' + ', '.join(missing) if missing else 'another run, fold or broken predictions'}; "
                        "re-run it)")
    return d


def run_cv(p: Params, folds_root: Path, out_json: Path, plots_dir: Path) -> dict[str, Any]:
    """Aggregate every fold of every run in ``cv.runs`` / ``cv.enhanced_runs`` (what params list, never
    whatever files exist); write ``out_json`` and, per run, ``<plots_dir>/<run>/confusion.{json,png}``."""
    out: dict[str, Any] = {}
    pictures: dict[str, tuple[np.ndarray, np.ndarray, list[str], str]] = {}
    k = len(p.cv.folds)
    for run in [*p.cv.runs, *p.cv.enhanced_runs]:
        res = [_read_fold(fold_file(folds_root, run, i), run, i) for i in p.cv.folds]
        first = res[0]
        for r, i in zip(res, p.cv.folds):
            if (r["classes"], r["protocol"], r["images"], r["epochs"], r.get("folds")) != \
                    (first["classes"], first["protocol"], first["images"], first["epochs"], k):
                raise DataError(f"{fold_file(folds_root, run, i)}: made with other CV settings than fold 0 "
                                "(classes, protocol, images, epochs or folds differ; re-run the folds: dvc repro)")
        tested = sum(len(r["true"]) for r in res)
        if tested != first["images"]:
            raise DataError(f"{fold_file(folds_root, run, 0).parent}: the folds test {tested} images, "
                            f"not the {first['images']} cross-validated (re-run the folds: dvc repro)")
        true = np.concatenate([np.asarray(r["true"], dtype=np.int64) for r in res])
        pred = np.concatenate([np.asarray(r["pred"], dtype=np.int64) for r in res])
        acc = np.array([r["accuracy"] for r in res], dtype=np.float64)
        f1 = np.array([r["macro_f1"] for r in res], dtype=np.float64)
        pooled = classification_metrics(true, pred, first["classes"])
        backbone, input_name = p.split_run(run, "cv.runs")
        out[run] = {
            "backbone": backbone, "input": input_name, "protocol": first["protocol"], "folds": k,
            "epochs": first["epochs"], "images": first["images"],
            "train_images_per_fold": int(round(np.mean([r["train_images"] for r in res]))),
            "subjects_shared": int(max(r["subjects_shared"] for r in res)),
            "accuracy_mean": round(float(acc.mean()), 4), "accuracy_std": round(float(acc.std(ddof=1)), 4),
            "macro_f1_mean": round(float(f1.mean()), 4), "macro_f1_std": round(float(f1.std(ddof=1)), 4),
            "pooled_accuracy": round(pooled["accuracy"], 4),
            "per_fold": {f"fold_{r['fold']}": {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "n": len(r["true"])}
                         for r in res},
        }
        if first.get("protocol_note"):
            out[run]["protocol_note"] = first["protocol_note"]
        title = (f"{run}: {k}-fold CV ({first['protocol']}), summed over folds "
                 f"(acc {acc.mean():.3f} ± {acc.std(ddof=1):.3f})")
        pictures[run] = (true, pred, first["classes"], title)
    write_json(out_json, out)
    with atomic_dir(plots_dir) as tmp:
        for run, (true, pred, classes, title) in pictures.items():
            (tmp / run).mkdir()
            write_json(tmp / run / "confusion.json", confusion_rows(true, pred, classes))
            cm = classification_metrics(true, pred, classes)["confusion"]
            plots.confusion(np.array(cm), classes, tmp / run / "confusion.png", title=title)
    return out


def command(args: argparse.Namespace) -> int:
    res = run_cv(params_of(args), Path(args.folds), Path(args.out), Path(args.plots))
    for run, r in res.items():
        print(f"{r['folds']}-fold CV ({r['protocol']}) {run}: accuracy {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f}, "
              f"macro-F1 {r['macro_f1_mean']:.4f} ± {r['macro_f1_std']:.4f}")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="aggregate the k-fold cross-validation folds (mean ± std, summed confusion)")
    add_common(sp)
    sp.add_argument("--folds", required=True, help="root of the fold results (<run>/fold_<i>.json)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--plots", required=True, help="folder for <run>/confusion.json and .png")
    sp.set_defaults(func=command)
