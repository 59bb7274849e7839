"""Which downscaling keeps the most of a face at 5 x 5 px?  A probe for ``degrade.lowres.interpolation``.

[efc-lowres] says it "applies a linear interpolation approach" to make its small faces; its code is
Keras, where linear resizing (``tf.image.resize``, ``cv2.resize(..., INTER_LINEAR)``) reads the 2 x 2
pixels around each output pixel's centre and ignores the rest when it shrinks: at 48 -> 5 px it samples
4 of every ~92 pixels and aliases.  llfer shrinks with ``area`` (a box filter over every pixel).  This
probe measures what the choice costs, without training the EFC net: each face of a prepared set is shrunk
to ``--size`` px by

* ``pil_box`` (llfer's ``area``: :func:`llfer.degrade.resize_images`, bit-identical to Pillow's BOX),
* ``pil_bilinear`` (llfer's ``bilinear``: Pillow's triangle filter, widened when shrinking: antialiased),
* ``cv_linear`` (OpenCV ``INTER_LINEAR``: the Keras-style, non-antialiased linear resize),
* ``cv_area`` (OpenCV ``INTER_AREA``),

and a scikit-learn MLP (two hidden layers of 256, Adam, ``--iters`` epochs, seed 0) is fitted on the
standardised pixels of the training split and scored on the validation split (the test split is not
read).  The accuracy is a property of the pixels, not of the EFC net: it ranks the downscalings.

    .venv/bin/python benchmarks/lowres_interpolation.py --prepared data/prepared [--size 5]
        [--iters 60] [--out benchmarks/results/lowres_interpolation.json]

``--prepared`` is the output of the ``prepare`` stage for a real set (e.g. after ``dvc exp run
-S +experiment=ferplus-efc-5px``).  For FER+ on one free core, 15 s per OpenCV downscaling and about
3 min for Pillow's bilinear (the MLP fit takes most of the 15 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from llfer.data.store import read_dataset  # noqa: E402
from llfer.degrade import resize_images  # noqa: E402


def _cv(images: np.ndarray, size: int, flag: int) -> np.ndarray:
    return np.stack([cv2.resize(np.ascontiguousarray(i), (size, size), interpolation=flag) for i in images])


METHODS = {
    "pil_box": lambda x, s: resize_images(x, s, "area"),
    "pil_bilinear": lambda x, s: resize_images(x, s, "bilinear"),
    "cv_linear": lambda x, s: _cv(x, s, cv2.INTER_LINEAR),
    "cv_area": lambda x, s: _cv(x, s, cv2.INTER_AREA),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepared", required=True, help="a prepared dataset directory (images.npy, index.csv)")
    ap.add_argument("--size", type=int, default=5)
    ap.add_argument("--iters", type=int, default=60, help="MLP training epochs")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default="benchmarks/results/lowres_interpolation.json")
    a = ap.parse_args(argv)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    names = [m for m in a.methods.split(",") if m]
    bad = [m for m in names if m not in METHODS]
    if bad:
        ap.error(f"--methods: unknown {bad[0]!r}; allowed: {', '.join(METHODS)}")
    ds = read_dataset(a.prepared)
    if ds.images.ndim != 3:
        ap.error(f"--prepared {a.prepared}: grayscale images expected, got shape {ds.images.shape}")
    tr, va = ds.split_indices("train"), ds.split_indices("val")
    if not len(tr) or not len(va):
        ap.error(f"--prepared {a.prepared}: needs train and val faces ({len(tr)} / {len(va)})")
    y = ds.labels
    x = np.asarray(ds.images[np.concatenate([tr, va])])
    res: dict[str, dict[str, float]] = {}
    for m in names:
        t0 = time.perf_counter()
        z = METHODS[m](x, a.size).reshape(len(x), -1).astype(np.float32)
        ztr, zva = z[: len(tr)], z[len(tr):]
        mu, sd = ztr.mean(0), ztr.std(0) + 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp = MLPClassifier((256, 256), max_iter=a.iters, random_state=0).fit((ztr - mu) / sd, y[tr])
        acc = float(mlp.score((zva - mu) / sd, y[va]))
        res[m] = {"val_acc": round(acc, 4), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{m:>13}: val acc {acc:.4f} ({res[m]['seconds']:.0f} s)", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"dataset": ds.meta.get("provenance", {}).get("dataset"), "size": a.size, "iters": a.iters,
                               "train": int(len(tr)), "val": int(len(va)), "results": res}, indent=2) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
