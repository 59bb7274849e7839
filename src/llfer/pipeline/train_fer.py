"""Stages ``train_fer@<backbone>-<input>`` / ``train_fer_enhanced@...``: train a FER backbone on an
input and score it on its test input and on every spec in ``fer.eval_on``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import plots
from ..build import backbone_options, build_backbone
from ..checkpoint import save_classifier
from ..config import Params
from ..device import resolve_device, seed_everything
from ..enhance.base import num_params
from ..inputs import InputLoader, Roots, make_loader, parse_spec
from ..io import atomic_dir, write_json
from ..metrics.classification import classification_metrics, confusion_rows
from ..runfacts import record
from ..train.fer import predict_views, train_classifier
from .args import SubParsers, add_common, params_of, roots_of


#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "train-fer"
OUTPUTS = ("model_out", "metrics", "plots")
INPUTS = ("prepared", "degraded", "enhanced")


def eval_specs(p: Params, test_spec: str, with_enhanced: bool) -> dict[str, str]:
    """Test sets a run is scored on: its own test input and fer.eval_on, composed with its preprocessors."""
    _, preps = parse_spec(test_spec, p.variant_names(), p.enhance.variants)
    specs = {"test": test_spec}
    for s in p.fer.eval_on:
        src, extra = parse_spec(s, p.variant_names(), p.enhance.variants)
        if src.startswith("enhanced") and not with_enhanced:
            continue
        specs[s] = "+".join([src, *extra, *preps])
    return specs


def evaluate_specs(model: nn.Module, loader: InputLoader, specs: dict[str, str], classes: list[str], input_size: int,
                   device: torch.device, batch_size: int = 512, tta_flip: bool = False,
                   tta_shift: float = 0.0) -> dict[str, dict[str, Any]]:
    """Classification metrics (plus ``pred`` / ``true``) of ``model`` on the test split of every spec; with
    test-time views also the accuracy of the face alone and (shifts) of face and mirror alone, from the same pass."""
    out = {}
    for key, spec in specs.items():
        x, y, _ = loader.load(spec, "test", train=False)
        views = predict_views(model, x, input_size, device, batch_size, tta_flip, tta_shift)
        pred = views.mean(0).argmax(1)
        m = classification_metrics(y, pred, classes)
        if len(views) > 1:  # the faces alone, from the same pass: what the extra views add
            m["single_view_accuracy"] = float((views[0].argmax(1) == y).mean())
        if tta_flip and tta_shift > 0:  # face and mirror alone: what the shifts add
            m["flip_view_accuracy"] = float((views[:2].mean(0).argmax(1) == y).mean())
        m["pred"] = pred
        m["true"] = y
        out[key] = m
    return out


def run_train_fer(p: Params, backbone: str, input_name: str, roots: Roots, model_out: Path, metrics_out: Path,
                  plots_out: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``backbone`` on input ``input_name``; score it on its test input and ``fer.eval_on``."""
    spec = p.input_def(input_name)
    loader = make_loader(p, roots)
    classes = loader.classes()
    # fer.train.train_on_val: train and val merged, no validation, the last of fer.train.epochs kept
    # ([efc-lowres]'s protocol; the epochs come from an earlier run that chose them on the validation split)
    refit = p.fer.train.train_on_val
    fit_splits = ("train", "val") if refit else "train"
    xtr, ytr, _ = loader.load(spec.train, fit_splits, train=True)
    val = None if refit else loader.load(spec.test, "val", train=False)[:2]
    soft = loader.extra("soft_labels", fit_splits, "fer.train.soft_labels") if p.fer.train.soft_labels else None
    in_ch = 1 if xtr.ndim == 3 else xtr.shape[3]
    seed_everything(p.seed)
    model, input_size = build_backbone(p, backbone, classes, in_ch)
    device = resolve_device(p.runtime.device)
    ckpt = Path(model_out).parent / f".{Path(model_out).name}.last.pt"
    res = train_classifier(model, (xtr, ytr), val, p.fer.train, num_classes=len(classes),
                           input_size=input_size, device=device, seed=p.seed, checkpoint=ckpt, resume=resume,
                           progress=progress, eval_batch_size=p.runtime.eval_batch_size,
                           channels_last=p.runtime.channels_last, soft=soft)
    with_enh = roots.enhanced is not None
    evals = evaluate_specs(res.model, loader, eval_specs(p, spec.test, with_enh), classes, input_size, device,
                           p.runtime.eval_batch_size, p.fer.train.tta_flip, p.fer.train.tta_shift)
    main = evals["test"]
    if main["absent_classes"]:
        logging.getLogger("llfer").warning(
            "%s: class(es) %s absent from the test split; macro-F1 averages over the %d present",
            roots.prepared, ", ".join(main["absent_classes"]), len(classes) - len(main["absent_classes"]))
    # Flat and small, numbers only (dvc metrics show / diff); details go to plots/ and the model dir.  No run
    # facts (they would change the hash and the diff on every run): training time goes to metrics/timing/.
    record(train_seconds=round(res.seconds, 2), device=str(device))
    metrics: dict[str, Any] = {
        "test_acc": round(main["accuracy"], 4), "test_macro_f1": round(main["macro_f1"], 4),
        # no validation split left when it was trained on (train_on_val): no val_acc / best_epoch
        **({} if refit else {"val_acc": round(res.best_score, 4), "best_epoch": res.best_epoch}),
        "epochs_run": round(res.steps_done / res.steps_per_epoch),
        "train_images": int(min(len(ytr), p.fer.train.max_train or len(ytr))),
        "params": num_params(res.model),
        **{f"acc_{k}": round(v["accuracy"], 4) for k, v in evals.items() if k != "test"},
        # per-class test precision ([mini-xception-fer] Table 3 layout; the report's papers' tables read it)
        **{f"precision_{c}": round(v["precision"], 4) for c, v in main["per_class"].items()},
    }
    if "single_view_accuracy" in main:  # the single-view test accuracy beside it: what the views add, in one run
        metrics["test_acc_single_view"] = round(main["single_view_accuracy"], 4)
    if "flip_view_accuracy" in main:  # face + mirror without the shifts
        metrics["test_acc_flip_views"] = round(main["flip_view_accuracy"], 4)
    per_class = pd.DataFrame([{"class": c, "precision": round(v["precision"], 4), "recall": round(v["recall"], 4),
                               "f1": round(v["f1"], 4), "support": v["support"]} for c, v in main["per_class"].items()])
    cfg = {"backbone": backbone, "options": {**backbone_options(p, backbone), "num_classes": len(classes),
                                              "in_channels": in_ch}, "input": input_name,
           "train_spec": spec.train, "test_spec": spec.test, "classes": classes,
           "tta_flip": p.fer.train.tta_flip,  # `llfer predict` averages face and mirror as the test scores did
           "tta_shift": p.fer.train.tta_shift,  # and the shifted views
           # the preprocessors' options, so `llfer predict` prepares faces exactly as training did
           "preprocess": {k: dict(v or {}) for k, v in p.fer.preprocess.items()}}
    with atomic_dir(model_out) as tmp:
        save_classifier(tmp / "model.safetensors", res.model, cfg)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    write_json(metrics_out, metrics)
    with atomic_dir(plots_out) as tmp:
        pd.DataFrame(res.history).to_csv(tmp / "history.csv", index=False)
        per_class.to_csv(tmp / "per_class.csv", index=False)
        plots.curves(res.history, tmp / "curves.png", f"{backbone} / {input_name}")
        write_json(tmp / "confusion.json", confusion_rows(main["true"], main["pred"], classes))
        plots.confusion(np.array(main["confusion"]), classes, tmp / "confusion.png",
                        title=f"{backbone} / {input_name}: test {spec.test} (acc {main['accuracy']:.3f})")
    ckpt.unlink(missing_ok=True)
    return metrics


def command(args: argparse.Namespace) -> int:
    p = params_of(args)
    if args.input is None:  # one argument: a run <backbone>-<input> (fer.runs)
        args.backbone, args.input = p.split_run(args.backbone, "train-fer")
    m = run_train_fer(p, args.backbone, args.input, roots_of(args, p), Path(args.model_out), Path(args.metrics),
                      Path(args.plots), resume=args.resume, progress=not args.no_progress)
    print(f"{args.backbone}-{args.input}: test acc {m['test_acc']:.4f}, macro-F1 {m['test_macro_f1']:.4f}; " +
          ", ".join(f"{k[4:]} {v:.4f}" for k, v in m.items() if k.startswith("acc_")))
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="train and evaluate a FER backbone on an input")
    add_common(sp)
    sp.add_argument("backbone", help="backbone, or a whole run <backbone>-<input> (as fer.runs lists them)")
    sp.add_argument("input", nargs="?", help="input name or spec (omitted: BACKBONE is <backbone>-<input>)")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced", help="directory of the selected enhancer's output (for enhanced inputs)")
    sp.add_argument("--model-out", required=True)
    sp.add_argument("--metrics", required=True)
    sp.add_argument("--plots", required=True)
    sp.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    sp.set_defaults(func=command)
