"""Does the synthetic set show the low-light gap?  Clean vs darkened vs HE-enhanced accuracy.

Generates the default ``synthetic`` set, trains a small 3-conv CNN on the clean
train split (CPU, a few epochs, model picked by val accuracy), and scores the
test split three ways:

* ``clean``: the images as generated;
* ``dark``: ``PIL.ImageEnhance.Brightness(img).enhance(0.1)`` (== ``floor(v * 0.1)``);
* ``dark_he``: the dark images after per-image histogram equalisation
  (``skimage.exposure.equalize_hist``, back to uint8);

plus ``clean_he`` for reference.  Prints a summary and writes
``benchmarks/results/synthetic_gap.json``.

    PYTHONPATH=src python benchmarks/synthetic_gap.py [--epochs 12] [--num-images 4200]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from skimage.exposure import equalize_hist

from llfer.data.store import CLASSES_FER2013
from llfer.data.synthetic import read_synthetic

OUT = Path(__file__).resolve().parent / "results" / "synthetic_gap.json"


def darken(images: np.ndarray, factor: float = 0.1) -> np.ndarray:
    """PIL brightness darkening; checked against ImageEnhance on every grey level."""
    out = np.floor(images.astype(np.float64) * factor).astype(np.uint8)
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ref = np.asarray(ImageEnhance.Brightness(Image.fromarray(ramp)).enhance(factor))
    assert np.array_equal(ref, np.floor(ramp * factor).astype(np.uint8)), "PIL darkening is not floor(v*f)"
    return out


def he(images: np.ndarray) -> np.ndarray:
    return np.stack([np.rint(equalize_hist(im) * 255).astype(np.uint8) for im in images])


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int = 7, width: int = 16):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, c1), block(c1, c2), block(c2, c3))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(c3 * 6 * 6, 128), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(128, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and +-3 px shift."""
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=g))
    x = F.pad(x, (3, 3, 3, 3), mode="replicate")
    return x[:, :, 3 + dy : 3 + dy + 48, 3 + dx : 3 + dx + 48]


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    pred = torch.cat([model(to_tensor(images[i : i + 512])).argmax(1) for i in range(0, len(images), 512)])
    return float((pred.numpy() == labels).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-images", type=int, default=4200)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=16, help="channels of the first conv (then x2, x4)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    prep = read_synthetic(num_images=args.num_images, seed=args.seed)
    gen_s = time.perf_counter() - t0
    idx = prep.index
    X, y = prep.images, idx["label"].to_numpy()
    tr, va, te = (idx["split"].to_numpy() == s for s in ("train", "val", "test"))
    print(f"generated {len(X)} images in {gen_s:.1f} s; train/val/test = {tr.sum()}/{va.sum()}/{te.sum()}")

    model = SmallCNN(len(CLASSES_FER2013), args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * int(np.ceil(tr.sum() / 64))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(args.seed)
    xtr, ytr = to_tensor(X[tr]), torch.from_numpy(y[tr])
    best, best_state, history = -1.0, None, []
    t1 = time.perf_counter()
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(perm), 64):
            b = perm[i : i + 64]
            loss = F.cross_entropy(model(augment(xtr[b], g)), ytr[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc_va = accuracy(model, X[va], y[va])
        history.append(round(acc_va, 4))
        print(f"epoch {ep + 1}: loss {loss.item():.3f} val {acc_va:.3f}")
        if acc_va > best:
            best, best_state = acc_va, {k: v.clone() for k, v in model.state_dict().items()}
    train_s = time.perf_counter() - t1
    model.load_state_dict(best_state)

    Xte, yte = X[te], y[te]
    dark = darken(Xte)
    res = {
        "clean": accuracy(model, Xte, yte),
        "dark": accuracy(model, dark, yte),
        "dark_he": accuracy(model, he(dark), yte),
        "clean_he": accuracy(model, he(Xte), yte),
    }
    out = {
        "dataset": prep.provenance,
        "generation_s": round(gen_s, 2),
        "train_s": round(train_s, 1),
        "epochs": args.epochs,
        "width": args.width,
        "val_acc_per_epoch": history,
        "best_val_acc": round(best, 4),
        "test_images": int(te.sum()),
        "chance": round(float(np.bincount(yte).max() / len(yte)), 4),
        "test_acc": {k: round(v, 4) for k, v in res.items()},
        "dark_gap_points": round(100 * (res["clean"] - res["dark"]), 1),
        "he_recovered_points": round(100 * (res["dark_he"] - res["dark"]), 1),
        "torch": torch.__version__,
    }
    print(json.dumps(out["test_acc"]), f"gap {out['dark_gap_points']} pts, HE recovers {out['he_recovered_points']} pts")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
