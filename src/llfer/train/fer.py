"""One fast training loop for every FER backbone.

Fast data path: the prepared uint8 arrays are turned into one uint8 tensor
once (on the GPU when there is one); every batch is sliced, converted to float,
resized to the backbone's input size and augmented *on tensors* (flip,
rotation, shift, zoom as in [sobel-alexnet], by one batched ``affine_grid``), so no
image is decoded per epoch and no DataLoader workers are needed.  On a GPU the
step runs under bf16 autocast.  Model and batches use channels_last memory
format on the GPU and on the CPU (``channels_last``, a ``runtime`` setting; on this project's CPU
it doubles mini-Xception's training throughput, oneDNN's depthwise and
pointwise convolutions being much faster in NHWC); evaluation runs under
``torch.inference_mode`` and can be done every ``cfg.eval_every`` epochs.
``benchmarks/bench_train_loop.py`` measures the loop against a conventional
``ImageFolder`` + ``DataLoader`` + PIL-transform loop.

Features: AdamW / Adam / SGD, cosine or step schedule with optional warm-up,
label smoothing, class-weighted loss, early stopping and best checkpoint by
validation accuracy, resumable checkpoints (``last.pt``), deterministic on the
CPU for a fixed seed, tqdm progress, per-epoch curves.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import AugmentCfg, FerTrainCfg
from ..errors import LlferError


def images_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 N x H x W (x C) -> uint8 tensor N x C x H x W on ``device`` (done once per run)."""
    t = torch.from_numpy(np.ascontiguousarray(images))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()
    return t.to(device)


def to_model_input(xb: torch.Tensor, size: int, channels_last: bool = False) -> torch.Tensor:
    """uint8 batch -> float [0, 1] at size x size (bilinear, antialiased when shrinking)."""
    x = xb.float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def augment_batch(x: torch.Tensor, cfg: AugmentCfg, gen: torch.Generator) -> torch.Tensor:
    """Random flip, rotation (deg), shift (fraction) and zoom (fraction) by one batched affine warp."""
    n = x.shape[0]
    if not (cfg.flip or cfg.rotation or cfg.shift or cfg.zoom):
        return x
    dev = x.device

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    ang = u(-cfg.rotation, cfg.rotation) * math.pi / 180.0
    scale = 1.0 / u(1 - cfg.zoom, 1 + cfg.zoom)
    tx, ty = u(-cfg.shift, cfg.shift) * 2, u(-cfg.shift, cfg.shift) * 2
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n)
    cos, sin = torch.cos(ang) * scale, torch.sin(ang) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(dev, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def make_optimizer(model: nn.Module, cfg: FerTrainCfg) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LlferError("the model has no trainable parameters")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)


def lr_factor(cfg: FerTrainCfg, epoch: int) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based): warm-up, then cosine / step / constant."""
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    e = epoch - cfg.warmup_epochs
    total = max(1, cfg.epochs - cfg.warmup_epochs)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * e / total))
    if cfg.schedule == "step":
        return cfg.step_gamma ** (e // cfg.step_size)
    return 1.0


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get weight 0)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def is_channels_last(model: nn.Module) -> bool:
    """True when the model's 4-d weights are stored channels_last (as ``train_classifier`` leaves them)."""
    for p in model.parameters():
        if p.dim() == 4:
            cl, std = p.is_contiguous(memory_format=torch.channels_last), p.is_contiguous()
            if cl != std:  # 1-channel or 1x1 weights are both; look further
                return cl
    return False


@torch.inference_mode()
def predict(model: nn.Module, images: np.ndarray | torch.Tensor, input_size: int, device: torch.device | str = "cpu",
            batch_size: int = 512) -> np.ndarray:
    """Logits (float32 numpy, N x C) of ``model`` on uint8 images."""
    device = torch.device(device)
    x = images if isinstance(images, torch.Tensor) else images_to_tensor(images, device)
    model.eval()
    out = []
    cl = device.type == "cuda" or is_channels_last(model)
    for i in range(0, len(x), batch_size):
        xb = to_model_input(x[i : i + batch_size].to(device), input_size, channels_last=cl)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(model(xb).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_acc: float = float("nan")
    seconds: float = 0.0


def _save_ckpt(path: Path, state: dict[str, Any]) -> None:
    from ..io import atomic_path

    with atomic_path(path, replace_check=False) as tmp:  # our own resume file, rewritten every epoch
        torch.save(state, tmp)


def check_labels(labels: np.ndarray, num_classes: int, where: str, min_classes: int = 2) -> None:
    """Labels are integers in 0..num_classes-1, of at least ``min_classes`` distinct classes."""
    if num_classes < 2:
        raise LlferError(f"{where}: {num_classes} class(es); a classifier needs at least 2")
    y = np.asarray(labels)
    if not len(y):
        return
    if not np.issubdtype(y.dtype, np.integer):
        raise LlferError(f"{where}: labels must be integers, got {y.dtype}")
    bad = y[(y < 0) | (y >= num_classes)]
    if len(bad):
        raise LlferError(f"{where}: label {int(bad[0])} outside 0..{num_classes - 1} ({len(bad)} such labels)")
    present = np.unique(y)
    if len(present) < min_classes:
        raise LlferError(f"{where}: only class {present.tolist()} present; a classifier needs at least "
                         f"{min_classes} classes")


def load_resume_state(path: Path, device: torch.device) -> dict[str, Any]:
    """The resume file written by :func:`_save_last`, loaded with ``weights_only=True`` (no pickled code)."""
    try:
        st = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # noqa: BLE001 - any failure means the file is not ours; never retry unsafely
        raise LlferError(f"{path}: not a valid llfer resume checkpoint (delete it to start over, "
                         "or run without --resume)") from None
    missing = [k for k in _RESUME_KEYS if not isinstance(st, dict) or k not in st]
    if missing:
        raise LlferError(f"{path}: not a valid llfer resume checkpoint (missing {', '.join(missing)}); "
                         "delete it to start over, or run without --resume")
    return st


_RESUME_KEYS = ("model", "optimizer", "generator", "history_keys", "history", "best_acc", "best_epoch", "epoch",
                "stale", "best_model")


def _save_last(ckpt: Path, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
               history: list[dict[str, float]], best_acc: float, best_epoch: int, epoch: int, stale: int,
               best_state: dict[str, torch.Tensor] | None) -> None:
    keys = list(dict.fromkeys(k for r in history for k in r))
    _save_ckpt(ckpt, {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
        "history_keys": keys, "history": torch.tensor([[r.get(k, float("nan")) for k in keys] for r in history], dtype=torch.float64),
        "best_acc": best_acc, "best_epoch": best_epoch, "epoch": epoch, "stale": stale, "best_model": best_state,
    })


def train_classifier(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    cfg: FerTrainCfg,
    *,
    num_classes: int,
    input_size: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    eval_batch_size: int = 512,
    channels_last: bool = True,
) -> TrainResult:
    """Train ``model`` on uint8 ``train`` = (images, labels); select the best epoch on ``val``.

    ``checkpoint``: path of a resumable ``last.pt`` written after every epoch;
    with ``resume=True`` training continues from it.  ``eval_batch_size`` and
    ``channels_last`` change speed, not results (params ``runtime``).
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    xtr, ytr = train
    if len(xtr) == 0:
        raise LlferError("empty training set")
    check_labels(ytr, num_classes, "training labels")
    if val is not None:
        check_labels(val[1], num_classes, "validation labels", min_classes=1)
    if cfg.max_train and len(xtr) > cfg.max_train:
        sel = np.random.default_rng(seed).choice(len(xtr), cfg.max_train, replace=False)
        xtr, ytr = xtr[np.sort(sel)], ytr[np.sort(sel)]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    is_cuda = device.type == "cuda"
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x_train = images_to_tensor(xtr, device)
    y_train = torch.as_tensor(ytr, dtype=torch.long, device=device)
    x_val = images_to_tensor(val[0], device) if val is not None and len(val[0]) else None
    y_val = val[1] if val is not None else None

    weight = class_weights(ytr, num_classes).to(device) if cfg.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    opt = make_optimizer(model, cfg)
    base_lrs = [g["lr"] for g in opt.param_groups]

    history: list[dict[str, float]] = []
    best_acc, best_epoch, best_state, start_epoch, stale = -1.0, -1, None, 0, 0
    ckpt = Path(checkpoint) if checkpoint else None
    if resume and ckpt is not None and ckpt.exists():
        st = load_resume_state(ckpt, device)
        try:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            gen.set_state(st["generator"])
            history = [{k: v for k, v in zip(st["history_keys"], row) if not math.isnan(v)} for row in st["history"].tolist()]
            best_acc, best_epoch, start_epoch, stale = float(st["best_acc"]), int(st["best_epoch"]), int(st["epoch"]) + 1, int(st["stale"])
        except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise LlferError(f"{ckpt}: resume checkpoint does not fit this run ({str(e).splitlines()[0][:200]}); "
                             "delete it to start over, or run without --resume") from None
        best_state = st["best_model"]
    t0 = time.perf_counter()
    n = len(x_train)
    bs = min(cfg.batch_size, n)
    steps = n // bs if n >= bs else 1
    bar = tqdm(range(start_epoch, cfg.epochs), desc="train", disable=not progress, mininterval=1)
    for epoch in bar:
        f = lr_factor(cfg, epoch)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * f
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        tot_loss = torch.zeros((), device=device)
        tot_correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for s in range(steps):
            idx = perm[s * bs : (s + 1) * bs]
            xb = to_model_input(x_train[idx], input_size)
            xb = augment_batch(xb, cfg.augment, gen)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = y_train[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=is_cuda):
                logits = model(xb)
                loss = loss_fn(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.detach() * len(idx)
            tot_correct += (logits.detach().argmax(1) == yb).sum()
            seen += len(idx)
        row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": float(tot_loss) / seen,
               "train_acc": float(tot_correct) / seen}
        evaluate = x_val is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs)
        if x_val is not None and not evaluate:
            history.append(row)
            if on_epoch:
                on_epoch(row)
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in ("train_loss", "train_acc")})
            if ckpt is not None:
                _save_last(ckpt, model, opt, gen, history, best_acc, best_epoch, epoch, stale, best_state)
            continue
        if x_val is not None:
            logits_v = predict(model, x_val, input_size, device, eval_batch_size)
            yv = torch.as_tensor(y_val)
            lv = torch.from_numpy(logits_v)
            row["val_loss"] = float(F.cross_entropy(lv, yv))
            row["val_acc"] = float((lv.argmax(1) == yv).float().mean())
            score = row["val_acc"]
        else:
            score = row["train_acc"]
        if score > best_acc:
            best_acc, best_epoch, stale = score, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        history.append(row)
        if on_epoch:
            on_epoch(row)
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in ("train_loss", "train_acc", "val_acc")})
        if ckpt is not None:
            _save_last(ckpt, model, opt, gen, history, best_acc, best_epoch, epoch, stale, best_state)
        if cfg.patience and stale >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    if cfg.bn_recalibrate:
        recalibrate_bn(model, x_train, input_size, cfg.bn_recalibrate, seed, cfg.bn_batch_size)
        if x_val is not None:
            best_acc = float((torch.from_numpy(predict(model, x_val, input_size, device, eval_batch_size)).argmax(1)
                              == torch.as_tensor(y_val)).float().mean())
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=best_epoch, best_val_acc=best_acc,
                       seconds=time.perf_counter() - t0)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x_train: torch.Tensor, input_size: int, max_images: int, seed: int,
                   batch_size: int = 512) -> None:
    """Re-estimate BatchNorm running statistics of the final weights on training images ("precise BN").

    Keras-style BN momentum (0.99, i.e. torch 0.01) averages over ~100 steps, so
    after a short run the running statistics lag the weights and eval mode can
    collapse to one class.  Here the statistics of trainable BN layers are reset
    and recomputed as an exact average over up to ``max_images`` training images
    (fixed seeded subset, no augmentation, no labels).  BN layers that the model
    keeps in eval mode while training (frozen pretrained layers) are left alone.
    """
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats and m.training]
    if not bns:
        model.eval()
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    n = len(x_train)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(n, max_images)].sort().values
    cl = is_channels_last(model)
    dev = x_train.device
    for i in range(0, len(idx), batch_size):
        xb = to_model_input(x_train[idx[i : i + batch_size].to(dev)], input_size, channels_last=cl)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            model(xb)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.eval()
