"""Stages ``joint@<enhancer>-<backbone>`` (joint.enhancers x joint.backbones): [ll-fer] joint training of an enhancer under a frozen FER classifier,
and the comparison of training schemes ([ll-fer] Fig. 10 / 11).

[ll-fer] ("Joint Training Strategy") pre-trains the FER network on normal-light faces, freezes it and
trains only the enhancer of the cascade enhancer -> FER with eq. (13),
``L_joint = L_res + L_ferp + L_cls + L_label`` (:mod:`llfer.enhance.joint_loss`).  Here:

* the classifier is the ``train_fer@<backbone>-clean`` run (``models/fer/<backbone>-clean``), frozen;
* the enhancer starts from its ``train_enhancer@<enhancer>`` checkpoint (the "independently trained"
  enhancer, IFER) and trains on (low-light, normal-light, label) triples of the train split, the low-light
  faces being ``joint.variant`` (default ``dark_gamma``, [ll-fer] eq. 14), through the one engine
  (:class:`llfer.train.engine.Trainer`); the cascade's accuracy on the val split (low-light faces enhanced,
  then classified, as at test time) selects the best weights;
* an optional second phase (``joint.finetune.steps`` > 0) trains enhancer and classifier together
  (the classifier's BatchNorm statistics and dropout stay as trained: eval mode, weights only).

The test split's low-light faces then go through every scheme with the same clean-trained classifier:
``clean`` (normal-light faces, the upper bound), ``baseline`` (low-light faces straight in), each
enhancer of ``joint.classical`` (``KFER`` in the paper, with KinD++), ``ifer`` (the train_enhancer
checkpoint) and ``joint``; per-class accuracy (recall, Fig. 11) and PSNR / SSIM of each enhancer's output
against the normal-light faces (does FER guidance cost image quality?).  Outputs: the joint enhancer as an
ordinary learned-enhancer checkpoint (``<out>/model.safetensors``: ``llfer enhance <enhancer> --model
<out>``, ``llfer predict --enhancer <out>``), with the second phase's enhancer and classifier under
``<out>/finetuned/``; flat metrics; history, curves, confusion matrix and per-class chart.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import plots
from ..build import apply_enhancer, build_enhancer, learned_enhancer_class
from ..checkpoint import load_classifier, save_classifier
from ..config import Params
from ..data.store import check_same_set, read_dataset
from ..device import resolve_device, seed_everything
from ..enhance.base import LearnedEnhancer, batch_to_float, random_crops
from ..enhance.joint_loss import JointLoss
from ..errors import ConfigError, DataError
from ..inputs import stratified_subset
from ..io import atomic_dir, write_json
from ..metrics.classification import classification_metrics, confusion_rows
from ..metrics.quality import psnr, ssim
from ..runfacts import record
from ..train.engine import EngineCfg, Trainer, images_to_tensor
from ..train.fer import predict
from .args import SubParsers, add_common, params_of

#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "joint"
OUTPUTS = ("out", "metrics", "plots")
INPUTS = ("prepared", "degraded", "fer_model", "enhancer_model")
log = logging.getLogger("llfer")


def _split(ds_clean: Any, ds_dark: Any, split: str, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low-light, normal-light, labels) of ``split``: a fixed class-stratified subset of at most ``n``."""
    idx = ds_clean.split_indices(split)
    if len(idx) == 0:
        raise DataError(f"{ds_clean.path}: split {split!r} is empty; joint training needs train, val and test faces")
    idx = idx[stratified_subset(ds_clean.labels[idx], n, seed)]
    return np.asarray(ds_dark.images[idx]), np.asarray(ds_clean.images[idx]), ds_clean.labels[idx]


def _classifier(path: Path, backbone: str, classes: list[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The clean-trained classifier of ``backbone``, checked against the pair and the dataset."""
    model, cfg = load_classifier(path)
    if cfg["backbone"] != backbone:
        raise DataError(f"{path}: a {cfg['backbone']!r} classifier, not {backbone!r}")
    if list(cfg.get("classes", classes)) != list(classes):
        raise DataError(f"{path}: classes {cfg.get('classes')} differ from the dataset's {classes}")
    if cfg.get("test_spec", "clean") != "clean":
        raise DataError(f"{path}: trained for input {cfg.get('test_spec')!r}, not clean faces; [ll-fer]'s supervisor "
                        "is the classifier trained on normal light (train_fer@<backbone>-clean)")
    return model, cfg


def _quality(images: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB, +inf capped at 100 as stage quality does) and SSIM of uint8 images against ``ref``."""
    return {"psnr": round(float(np.mean(np.minimum(psnr(images, ref), 100.0))), 4),
            "ssim": round(float(np.mean(ssim(images, ref))), 4)}


def run_joint(p: Params, enh_name: str, backbone: str, prepared: Path, degraded: Path, fer_model: Path, enhancer_model: Path,
              out: Path, metrics_out: Path, plots_out: Path, progress: bool = True) -> dict[str, Any]:
    """Train the pair's enhancer under its frozen classifier; compare the schemes on the test split."""
    pair = f"{enh_name}-{backbone}"
    if pair not in p.joint_pairs():
        raise ConfigError(f"joint: {pair!r} is not a pair of joint.enhancers x joint.backbones "
                          f"({', '.join(p.joint_pairs())})")
    j, t = p.joint, p.joint.train
    device = resolve_device(p.runtime.device)
    clean = read_dataset(prepared)
    dark = read_dataset(Path(degraded) / j.variant)
    check_same_set(clean, dark, f"joint.variant {j.variant!r}")
    if dark.images.shape != clean.images.shape:
        raise DataError(f"{dark.path}: {dark.images.shape} images, not the clean set's {clean.images.shape}; "
                        "joint.variant must be a same-size darkening (triples pair row by row)")
    classes = clean.classes
    fer, fcfg = _classifier(Path(fer_model) / "model.safetensors", backbone, classes)
    size = int(fcfg["options"].get("input_size", 48))
    cls = learned_enhancer_class(enh_name)
    ifer = build_enhancer(p, enh_name, Path(enhancer_model))  # the independently trained enhancer, kept as is
    assert isinstance(ifer, LearnedEnhancer)
    seed_everything(p.seed)
    enh = cls.load(Path(enhancer_model) / "model.safetensors")  # the student, from the same checkpoint

    low_tr, high_tr, y_tr = _split(clean, dark, "train", t.max_train, p.seed)
    low_va, _, y_va = _split(clean, dark, "val", t.max_val, p.seed)
    low_te, high_te, y_te = _split(clean, dark, "test", None, p.seed)
    fer.to(device)
    bs = p.runtime.eval_batch_size

    def cascade(e: Any, images: np.ndarray, model: torch.nn.Module) -> np.ndarray:
        x = images if e is None else apply_enhancer(e, images, device, p.runtime.enhance_batch_size)
        return predict(model, x, size, device, bs).argmax(1)

    crit = JointLoss(enh, fer, w_res=j.weights.res, w_ferp=j.weights.ferp, w_cls=j.weights.cls,
                     w_label=j.weights.label, fer_size=size, freeze=True)
    lo_t, hi_t = images_to_tensor(low_tr, device), images_to_tensor(high_tr, device)
    y_t = torch.as_tensor(y_tr, dtype=torch.long, device=device)

    def step_with(loss_fn: JointLoss, before: Any = None) -> Any:
        def step(idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
            if before is not None:
                before()
            lo, hi = random_crops(batch_to_float(lo_t[idx]), batch_to_float(hi_t[idx]), 0, gen)  # a random flip
            loss, parts = loss_fn(lo, hi, y_t[idx])
            parts["train_acc"] = parts.pop("acc")
            return loss, parts
        return step

    def validate(model: torch.nn.Module) -> Any:
        def evaluate() -> dict[str, float]:
            return {"val_acc": float((cascade(enh, low_va, model) == y_va).mean())}
        return evaluate

    val_ifer = float((cascade(ifer, low_va, fer) == y_va).mean())
    cfg = EngineCfg(steps=t.steps, batch_size=t.batch_size, lr=t.lr, optimizer=t.optimizer, weight_decay=t.weight_decay,
                    schedule=t.schedule, warmup_steps=t.warmup_steps, grad_clip=t.grad_clip, eval_every=t.eval_every,
                    log_every=max(1, t.steps // 20), patience=t.patience)
    config = {"task": "joint", "pair": pair, "joint": j.model_dump(), "classifier": fcfg}
    trainer = Trainer(enh.model, cfg, device=device, seed=p.seed, metric="val_acc", mode="max", config=config,
                      progress=progress, desc=f"joint {pair}")
    res = trainer.fit(step_with(crit), len(lo_t), validate(fer))
    # step 0: the cascade with the independently trained enhancer, where the curve starts
    history = [{"phase": 1, "step": 0, "epoch": 0.0, "val_acc": val_ifer}, *({"phase": 1, **r} for r in res.history)]
    enh.model.eval()

    # the schemes, every one through the same clean-trained classifier
    schemes: dict[str, tuple[Any, np.ndarray]] = {"clean": (None, high_te), "baseline": (None, low_te)}
    for name in j.classical:
        schemes[name] = (build_enhancer(p, name), low_te)
    schemes["ifer"] = (ifer, low_te)
    schemes["joint"] = (enh, low_te)
    preds, quality = {}, {}
    for name, (e, images) in schemes.items():
        x = images if e is None else apply_enhancer(e, images, device, p.runtime.enhance_batch_size)
        preds[name] = predict(fer, x, size, device, bs).argmax(1)
        if name != "clean":
            quality[name] = _quality(x, high_te)
    joint_state = copy.deepcopy(enh)

    ft = j.finetune
    res_ft = None
    if ft.steps:
        for prm in fer.parameters():
            prm.requires_grad_(True)
        crit_ft = JointLoss(enh, fer, w_res=j.weights.res, w_ferp=j.weights.ferp, w_cls=j.weights.cls,
                            w_label=j.weights.label, fer_size=size, freeze=False)
        both = torch.nn.ModuleDict({"enhancer": enh.model, "classifier": fer})
        cfg_ft = replace(cfg, steps=ft.steps, lr=ft.lr, log_every=max(1, ft.steps // 20), warmup_steps=0)
        res_ft = Trainer(both, cfg_ft, device=device, seed=p.seed + 1, metric="val_acc", mode="max", config=config,
                         progress=progress, desc=f"joint {pair} (classifier unfrozen)").fit(
            step_with(crit_ft, before=fer.eval), len(lo_t), validate(fer))
        both.eval()
        history += [{"phase": 2, **r, "step": r["step"] + res.steps_done} for r in res_ft.history]
        x = apply_enhancer(enh, low_te, device, p.runtime.enhance_batch_size)
        preds["joint_finetuned"] = predict(fer, x, size, device, bs).argmax(1)
        quality["joint_finetuned"] = _quality(x, high_te)

    cm = {k: classification_metrics(y_te, v, classes) for k, v in preds.items()}
    record(train_seconds=round(res.seconds + (res_ft.seconds if res_ft else 0.0), 2), device=str(device))
    first = next((r["train_loss"] for r in res.history), float("nan"))
    metrics: dict[str, Any] = {
        **{f"acc_{k}": round(m["accuracy"], 4) for k, m in cm.items()},
        **{f"{q}_{k}": v[q] for k, v in quality.items() for q in ("psnr", "ssim")},
        "val_acc_ifer": round(val_ifer, 4), "val_acc_joint": round(res.best_score, 4),
        "best_step": res.best_step, "steps_run": res.steps_done,
        "loss_first": round(first, 4), "loss_last": round(res.history[-1]["train_loss"], 4),
        "train_triples": int(len(y_tr)), "val_images": int(len(y_va)), "test_images": int(len(y_te)),
        # per-class accuracy (recall) of every scheme, [ll-fer] Fig. 11
        **{f"class_acc_{k}_{c}": round(v["recall"], 4) for k, m in cm.items() for c, v in m["per_class"].items()},
    }
    if res_ft is not None:
        metrics["val_acc_joint_finetuned"] = round(res_ft.best_score, 4)
    summary = {"pair": pair, "enhancer": enh_name, "backbone": backbone, "variant": j.variant,
               "init": str(Path(enhancer_model) / "model.safetensors"), "classifier": str(Path(fer_model)),
               **{k: metrics[k] for k in ("val_acc_ifer", "val_acc_joint", "best_step", "steps_run", "acc_ifer",
                                          "acc_joint")}}
    per_class = pd.DataFrame({"class": classes, **{k: [round(m["per_class"][c]["recall"], 4) for c in classes]
                                                   for k, m in cm.items()}})
    main = "joint_finetuned" if res_ft is not None else "joint"
    with atomic_dir(out) as tmp:
        joint_state.save(tmp / "model.safetensors", extra=summary)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
        if res_ft is not None:
            (tmp / "finetuned" / "enhancer").mkdir(parents=True)
            enh.save(tmp / "finetuned" / "enhancer" / "model.safetensors", extra={**summary, "phase": 2})
            (tmp / "finetuned" / "classifier").mkdir(parents=True)
            ccfg = {**fcfg, "input": f"joint:{pair}", "joint": pair}
            save_classifier(tmp / "finetuned" / "classifier" / "model.safetensors", fer, ccfg)
            (tmp / "finetuned" / "classifier" / "config.json").write_text(json.dumps(ccfg, indent=2) + "\n")
    write_json(metrics_out, metrics)
    with atomic_dir(plots_out) as tmp:
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
        per_class.to_csv(tmp / "per_class.csv", index=False)
        plots.curves(history, tmp / "curves.png", f"joint {pair} on {j.variant}: L_joint and cascade accuracy", x="step")
        write_json(tmp / "confusion.json", confusion_rows(y_te, preds[main], classes))
        plots.confusion(np.array(cm[main]["confusion"]), classes, tmp / "confusion.png",
                        title=f"{pair} ({main}): test {j.variant} (acc {cm[main]['accuracy']:.3f})")
        bars = pd.DataFrame({"run": ["all", *classes],
                             **{f"on {k}": [cm[k]["accuracy"], *per_class[k]] for k in cm}})
        plots.accuracy_chart(bars, tmp / "schemes.png")
    return metrics


def command(args: argparse.Namespace) -> int:
    p = params_of(args)
    m = run_joint(p, args.enhancer, args.backbone, Path(args.prepared), Path(args.degraded), Path(args.fer_model),
                  Path(args.enhancer_model), Path(args.out), Path(args.metrics), Path(args.plots),
                  progress=not args.no_progress)
    print(f"joint {args.enhancer}-{args.backbone}: test accuracy " + ", ".join(
        f"{k[4:]} {v:.4f}" for k, v in m.items() if k.startswith("acc_")) +
        f"; PSNR ifer {m['psnr_ifer']:.2f} -> joint {m['psnr_joint']:.2f} dB")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="[ll-fer] joint training of an enhancer under a frozen classifier, and the "
                                      "comparison of training schemes")
    add_common(sp)
    sp.add_argument("enhancer", help="a learned enhancer of joint.enhancers")
    sp.add_argument("backbone", help="a backbone of joint.backbones (its clean-trained classifier supervises)")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--fer-model", required=True, help="the classifier's model directory (train_fer@<backbone>-clean)")
    sp.add_argument("--enhancer-model", required=True, help="the enhancer's model directory (train_enhancer@<enhancer>)")
    sp.add_argument("--out", required=True, help="model directory of the joint enhancer")
    sp.add_argument("--metrics", required=True)
    sp.add_argument("--plots", required=True)
    sp.set_defaults(func=command)
