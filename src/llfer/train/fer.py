"""FER training on the one engine (:mod:`llfer.train.engine`): the classifier's data path and metric.

Fast data path: the prepared uint8 arrays are turned into one uint8 tensor
once (on the GPU when there is one); every batch is sliced, converted to float,
resized to the backbone's input size and augmented *on tensors* (flip,
rotation, shift, zoom as in [sobel-alexnet], by one batched ``affine_grid``), so no
image is decoded per epoch and no DataLoader workers are needed.  Model and batches use channels_last
memory format (``channels_last``, a ``runtime`` setting; on this project's CPU it doubles mini-Xception's
training throughput, oneDNN's depthwise and pointwise convolutions being much faster in NHWC); evaluation
runs under ``torch.inference_mode`` every ``cfg.eval_every`` epochs, after precise BatchNorm statistics.
``benchmarks/bench_train_loop.py`` measures the loop against a conventional
``ImageFolder`` + ``DataLoader`` + PIL-transform loop.

The engine gives the rest: optimizer, per-step schedule with warm-up, bf16 on a GPU, gradient clipping,
early stopping and best weights by validation accuracy, resumable checkpoints, history, progress bar.
Label smoothing, class-weighted loss, soft (label-distribution) targets and test-time flip averaging are
this task's.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import AugmentCfg, FerTrainCfg
from ..errors import LlferError
from .engine import EngineCfg, Trainer, TrainResult, images_to_tensor


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


def mixup_batch(x: torch.Tensor, targets: torch.Tensor, num_classes: int, alpha: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """mixup (Zhang et al., ICLR 2018): ``x~ = lam x_i + (1 - lam) x_j``, ``y~ = lam y_i + (1 - lam) y_j``.

    One ``lam ~ Beta(alpha, alpha)`` per batch and ``j`` a random permutation of the batch, as in the
    paper's reference recipe.  ``targets`` are class indices (made one-hot) or label distributions (FER+
    soft labels); the result is a distribution, which ``nn.CrossEntropyLoss`` takes as its target.
    ``lam`` is drawn by the inverse Beta CDF of a uniform from the run's own generator (torch's ``Beta``
    takes no generator), so a resumed run draws the same mixes.
    """
    from scipy.special import betaincinv

    if alpha <= 0:
        raise LlferError(f"fer.train.mixup: Beta parameter must be > 0, got {alpha}")
    u = float(torch.rand(1, generator=gen))
    lam = float(betaincinv(alpha, alpha, u))
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    t = F.one_hot(targets, num_classes).to(x.dtype) if targets.ndim == 1 else targets
    return lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm]


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


def predict(model: nn.Module, images: np.ndarray | torch.Tensor, input_size: int, device: torch.device | str = "cpu",
            batch_size: int = 512, tta_flip: bool = False, tta_shift: float = 0.0) -> np.ndarray:
    """Logits (float32 numpy, N x C) of ``model`` on uint8 images (the model is put in eval mode and otherwise
    left as it is).

    ``tta_flip``: test-time flip averaging, the logits are the mean of those of each face and of its
    horizontal mirror (faces are about symmetric and training flips them; the papers do not use it, the
    field does: ``fer.train.tta_flip``).  Twice the forward passes, one batch holding both views.
    ``tta_shift``: also the views shifted by that fraction of the input size left, right, up and down
    (``fer.train.tta_shift``; five times the views), see :func:`predict_views`.
    """
    return predict_views(model, images, input_size, device, batch_size, tta_flip, tta_shift).mean(0)


def shift_views(x: torch.Tensor, shift: float) -> torch.Tensor:
    """x (B x C x H x W float) and its four copies translated by ``shift`` of the width / height right, left,
    down and up, stacked as 5B (view-major); the uncovered border repeats the edge pixels (``grid_sample``
    with border padding, as :func:`augment_batch` fills a training shift)."""
    b = x.shape[0]
    offsets = torch.tensor([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=x.dtype, device=x.device) * 2 * shift
    theta = torch.zeros(len(offsets), 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = -offsets  # the sampling grid moves against the picture
    theta = theta.repeat_interleave(b, 0)
    xs = x.repeat(len(offsets), 1, 1, 1)
    grid = F.affine_grid(theta, list(xs.shape), align_corners=False)
    return F.grid_sample(xs, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.inference_mode()
def predict_views(model: nn.Module, images: np.ndarray | torch.Tensor, input_size: int,
                  device: torch.device | str = "cpu", batch_size: int = 512, flip: bool = False,
                  shift: float = 0.0) -> np.ndarray:
    """Logits per view (float32 numpy, V x N x C): view 0 the faces, view 1 (``flip``) their mirrors, then
    (``shift`` > 0) the four shifts of :func:`shift_views` of these: V = 1, 2, 5 or 10.

    Test-time shifts are the field's multi-crop averaging at a scale where cropping would lose the face:
    training shifts the faces by up to ``fer.train.augment.shift``, so the network has seen them, and
    averaging over small shifts smooths how a face's few pixels fall on the network's stride-2 grids.

    The input batches take the model's memory format: channels_last when its weights are (a classifier read
    by :func:`llfer.checkpoint.load_classifier`, or trained with ``runtime.channels_last``), where on this
    project's CPU mini-Xception scores 3-3.5x faster than NCHW (oneDNN's depthwise convolutions and
    max-pooling), with logits equal up to float rounding (max |diff| 7e-6 on 315 faces, the same top-1).
    """
    if shift < 0 or shift >= 0.5:
        raise LlferError(f"fer.train.tta_shift: {shift} is not a fraction of the input size in [0, 0.5)")
    device = torch.device(device)
    model.eval()
    cl = device.type == "cuda" or is_channels_last(model)
    x = images if isinstance(images, torch.Tensor) else images_to_tensor(images, device)
    n_views = (2 if flip else 1) * (5 if shift > 0 else 1)
    out = []
    for i in range(0, len(x), batch_size):
        xb = to_model_input(x[i : i + batch_size].to(device), input_size)
        if flip:
            xb = torch.cat([xb, xb.flip(-1)])
        if shift > 0:  # (face, mirror) unshifted, then each shift of both: views 0 and 1 stay face and mirror
            xb = shift_views(xb, shift)
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(xb).float().cpu()
        out.append(logits.view(n_views, -1, logits.shape[1]))
    return torch.cat(out, 1).numpy() if out else np.zeros((n_views, 0, 0), np.float32)


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


def engine_cfg(cfg: FerTrainCfg, steps_per_epoch: int, channels_last: bool) -> EngineCfg:
    """``fer.train`` (counted in epochs) as the engine's step-based settings."""
    spe = steps_per_epoch
    return EngineCfg(steps=max(cfg.epochs * spe, cfg.min_steps), batch_size=cfg.batch_size, lr=cfg.lr, optimizer=cfg.optimizer,
                     weight_decay=cfg.weight_decay, momentum=cfg.momentum, schedule=cfg.schedule,
                     warmup_steps=cfg.warmup_epochs * spe, step_size=cfg.step_size * spe, step_gamma=cfg.step_gamma,
                     plateau_patience=cfg.plateau_patience, grad_clip=cfg.grad_clip,
                     eval_every=cfg.eval_every * spe, log_every=spe, patience=cfg.patience,
                     channels_last=channels_last)


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
    eval_batch_size: int = 512,
    channels_last: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    soft: np.ndarray | None = None,
) -> TrainResult:
    """Train ``model`` on uint8 ``train`` = (images, labels) with the one engine; select the best epoch on ``val``.

    ``soft`` (N x num_classes, rows summing to 1; with ``cfg.soft_labels``): the loss is the cross-entropy
    against each face's label distribution instead of its label, e.g. FER+'s annotator votes (Barsoum et
    al. 2016, "probabilistic label drawing"/"cross-entropy loss" schemes: the distribution carries how
    ambiguous a face is).  Label smoothing and class weights apply to it as to hard labels; training
    accuracy and validation still use the majority labels.

    Validation accuracy is scored every ``cfg.eval_every`` epochs (and after the last) after
    re-estimating the BatchNorm statistics of the current weights on training images
    (:func:`recalibrate_bn`, ``cfg.bn_recalibrate`` images): with Keras-style BN momentum the running
    statistics lag the weights by ~100 steps, so without this the validation numbers of a short run sit
    at chance and best-epoch selection and early stopping would see noise.  Without a validation set the
    last epoch is kept and its statistics re-estimated.  ``checkpoint``: the engine's resumable file;
    ``on_epoch`` sees each epoch's history row; ``eval_batch_size`` and ``channels_last`` change speed, not results (params ``runtime``).
    """
    device = torch.device(device)
    xtr, ytr = train
    if len(xtr) == 0:
        raise LlferError("empty training set")
    check_labels(ytr, num_classes, "training labels")
    if val is not None:
        check_labels(val[1], num_classes, "validation labels", min_classes=1)
    if cfg.soft_labels:
        if soft is None:
            raise LlferError("fer.train.soft_labels: no label distributions given for the training set")
        soft = np.asarray(soft, dtype=np.float32)
        if soft.shape != (len(ytr), num_classes):
            raise LlferError(f"fer.train.soft_labels: label distributions of shape {soft.shape}, expected "
                             f"{(len(ytr), num_classes)}")
        if not np.allclose(soft.sum(1), 1.0, atol=1e-3) or (soft < 0).any():
            raise LlferError("fer.train.soft_labels: a training face's label distribution is negative or does "
                             "not sum to 1")
    if cfg.max_train and len(xtr) > cfg.max_train:
        sel = np.sort(np.random.default_rng(seed).choice(len(xtr), cfg.max_train, replace=False))
        xtr, ytr = xtr[sel], ytr[sel]
        soft = soft[sel] if soft is not None else None
    x_train = images_to_tensor(xtr, device)
    y_train = torch.as_tensor(ytr, dtype=torch.long, device=device)
    t_train = torch.as_tensor(soft, device=device) if cfg.soft_labels else y_train  # the loss's targets
    x_val = images_to_tensor(val[0], device) if val is not None and len(val[0]) else None
    y_val = torch.as_tensor(val[1], dtype=torch.long) if val is not None else None

    weight = class_weights(ytr, num_classes).to(device) if cfg.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)

    def step(idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        xb = augment_batch(to_model_input(x_train[idx], input_size), cfg.augment, gen)
        yb, tb = y_train[idx], t_train[idx]
        if cfg.mixup:
            xb, tb = mixup_batch(xb, tb, num_classes, cfg.mixup, gen)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        logits = model(xb)
        return loss_fn(logits.float(), tb), {"train_acc": (logits.detach().argmax(1) == yb).float().mean()}

    def evaluate() -> dict[str, float]:
        if cfg.bn_recalibrate:
            recalibrate_bn(model, x_train, input_size, cfg.bn_recalibrate, seed, cfg.bn_batch_size)
        assert x_val is not None and y_val is not None
        lv = torch.from_numpy(predict(model, x_val, input_size, device, eval_batch_size, cfg.tta_flip,
                                      cfg.tta_shift))
        return {"val_loss": float(F.cross_entropy(lv, y_val)), "val_acc": float((lv.argmax(1) == y_val).float().mean())}

    spe = max(1, len(x_train) // min(cfg.batch_size, len(x_train)))
    trainer = Trainer(model, engine_cfg(cfg, spe, channels_last), device=device, seed=seed, metric="val_acc",
                      mode="max", checkpoint=checkpoint, progress=progress, desc="train",
                      config={"task": "fer", "fer.train": cfg.model_dump(), "input_size": input_size,
                              "num_classes": num_classes})
    res = trainer.fit(step, len(x_train), evaluate if x_val is not None else None, resume=resume, on_row=on_epoch)
    if x_val is None and cfg.bn_recalibrate:
        recalibrate_bn(model, x_train, input_size, cfg.bn_recalibrate, seed, cfg.bn_batch_size)
    model.eval()
    return res


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
