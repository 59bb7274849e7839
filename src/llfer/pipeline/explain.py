"""Stage ``explain``: where each classifier looks, and what its first layer computes.

For every FER run params configure and a fixed set of test faces (``explain.faces``: one per class
in class order, then the next face of each class), under three lights: clean, darkened
(``fer.enhanced_variant``) and enhanced (the selected ``enhancer`` on that darkening):

* ``gradcam.png``: Grad-CAM ([ll-fer] Fig. 6) of the predicted class at the last feature convolution
  whose output is still a map (at least 2 x 2), computed with captum's ``LayerGradCam`` and overlaid on
  the face the network sees;
* ``filters.png``: the first convolution's kernels (first ``explain.filters``; channels averaged);
* ``feature_maps.png``: that convolution's output maps for the first face under the three lights
  ([mini-xception-fer]'s pictures of filters and feature maps).

Each face goes through the run's own test-time transform first (the downscale of a low-resolution
run, its preprocessors), as in :mod:`llfer.pipeline.robustness`.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import nn

from ..checkpoint import load_classifier
from ..config import Params
from ..degrade import apply_steps
from ..device import resolve_device
from ..errors import DataError
from ..inputs import Roots, make_loader
from ..io import atomic_dir, write_json
from ..preprocess import apply_preprocessors
from ..train.fer import images_to_tensor, to_model_input
from .args import SubParsers, add_common, fer_runs, params_of, roots_of
from .robustness import run_transform

#: the CLI sub-command, and the options naming its outputs / inputs (checked before any work)
COMMAND = "explain"
OUTPUTS = ("plots",)
INPUTS = ("models", "prepared", "degraded", "enhanced")


def pick_faces(labels: np.ndarray, n: int) -> np.ndarray:
    """Positions of ``n`` faces: the first of each class in class order, then the second of each, ..."""
    order: list[int] = []
    per_class = [list(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    while len(order) < min(n, len(labels)):
        for rows in per_class:
            if rows and len(order) < n:
                order.append(int(rows.pop(0)))
    return np.array(order, dtype=np.int64)


def conv_layers(model: nn.Module, size: int, in_ch: int) -> tuple[nn.Conv2d, nn.Conv2d]:
    """The first convolution, and the last one whose output is still a map (>= 2 x 2) at ``size`` px
    (other than a convolution to the class scores, when there is another)."""
    shapes: dict[nn.Module, tuple[int, ...]] = {}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise DataError(f"{type(model).__name__}: no convolution to explain")
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.__setitem__(m, tuple(o.shape))) for m in convs]
    try:
        with torch.no_grad():
            n_out = model(torch.zeros(1, in_ch, size, size)).shape[1]
    finally:
        for h in hooks:
            h.remove()
    maps = [m for m in convs if m in shapes and min(shapes[m][-2:]) >= 2]
    features = [m for m in maps if m.out_channels != n_out]  # not a 1x1 classifier convolution (mini-Xception's)
    return convs[0], (features or maps or convs)[-1]


def gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Grad-CAM maps (N x H x W in [0, 1], at the input's size) of classes ``target`` (captum's ``LayerGradCam``)."""
    from captum.attr import LayerAttribution, LayerGradCam

    x = x.clone().requires_grad_(True)
    attr = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    attr = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    a = attr.detach().sum(1).numpy()
    peak = a.reshape(len(a), -1).max(1)[:, None, None]
    return np.where(peak > 0, a / np.maximum(peak, 1e-12), 0.0)


def _shown(x: torch.Tensor) -> np.ndarray:
    """The network's input as a gray picture (channel 0: the gray face of a [gray, Gx, Gy] input)."""
    return x[:, 0].detach().numpy()


def run_explain(p: Params, models_root: Path, roots: Roots, plots_dir: Path) -> dict[str, Any]:
    """Draw Grad-CAM overlays, first-layer filters and feature maps of every run (see the module docstring)."""
    if roots.enhanced is None:
        raise DataError("explain: give the selected enhancer's output (--enhanced)")
    variant = p.fer.enhanced_variant
    loader = make_loader(p, replace(roots, enhanced_variant=variant))
    classes = loader.classes()
    clean, labels, ids = loader.load("clean", "test", train=False)
    rows = pick_faces(labels, p.explain.faces)
    ids = [ids[i] for i in rows]
    lights = {"clean": clean[rows], f"dark ({variant})": loader.load(variant, "test", train=False)[0][rows],
              f"{p.enhancer} on {variant}": loader.load("enhanced", "test", train=False)[0][rows]}
    device = resolve_device("cpu")  # captum's hooks on a few faces: the CPU is quick enough
    summary: dict[str, Any] = {}
    with atomic_dir(plots_dir) as tmp:
        for run in fer_runs(p):
            ck = Path(models_root) / run / "model.safetensors"
            if not ck.exists():
                raise DataError(f"{ck}: missing; params list FER run {run!r} (run its train_fer stage: dvc repro)")
            model, cfg = load_classifier(ck)
            model.to(device).eval()
            size = int(cfg["options"].get("input_size", 48))
            steps, preps = run_transform(p, cfg["test_spec"])
            xs, cams, preds = {}, {}, {}
            for light, imgs in lights.items():
                x = apply_steps(imgs, ids, steps, p.seed) if steps else imgs
                if preps:
                    x = apply_preprocessors(preps, x, ids=ids, train=False, seed=p.seed, params=p.fer.preprocess)
                t = to_model_input(images_to_tensor(x, device), size)
                with torch.no_grad():
                    pred = model(t).argmax(1)
                first, last = conv_layers(model, size, t.shape[1])
                xs[light], preds[light] = t, pred
                cams[light] = gradcam(model, last, t, pred)
            d = tmp / run
            d.mkdir()
            _draw_gradcam(xs, cams, preds, labels[rows], classes, d / "gradcam.png", f"{run}: Grad-CAM at {type(last).__name__} "
                          f"{_name_of(model, last)}")
            _draw_filters(first, p.explain.filters, d / "filters.png", f"{run}: first convolution {_name_of(model, first)}")
            _draw_feature_maps(model, first, xs, p.explain.filters, d / "feature_maps.png",
                               f"{run}: {_name_of(model, first)} maps of test face 1")
            summary[run] = {"gradcam_layer": _name_of(model, last), "first_layer": _name_of(model, first),
                            **{f"correct_{k.split(' ')[0]}": int((preds[k] == torch.as_tensor(labels[rows])).sum())
                               for k in preds}, "faces": len(rows)}
        write_json(tmp / "explain.json", summary)
    return summary


def _name_of(model: nn.Module, layer: nn.Module) -> str:
    return next((n for n, m in model.named_modules() if m is layer), type(layer).__name__)


def _draw_gradcam(xs: dict[str, torch.Tensor], cams: dict[str, np.ndarray], preds: dict[str, torch.Tensor],
                  labels: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    n, cols = len(labels), 2 * len(xs)
    fig = Figure(figsize=(1.35 * cols, 1.45 * n + 0.5))
    axes = fig.subplots(n, cols, squeeze=False)
    jet = colormaps["jet"]
    for j, (light, x) in enumerate(xs.items()):
        faces = _shown(x)
        for i in range(n):
            face = faces[i]
            a, b = axes[i, 2 * j], axes[i, 2 * j + 1]
            a.imshow(face, cmap="gray", vmin=0, vmax=1)
            b.imshow(face, cmap="gray", vmin=0, vmax=max(float(face.max()), 1e-3))
            b.imshow(jet(cams[light][i])[..., :3], alpha=0.45)
            ok = int(preds[light][i]) == int(labels[i])
            b.set_title(f"{classes[int(preds[light][i])]}{'' if ok else ' (x)'}", fontsize=6,
                        color="black" if ok else "red")
            if i == 0:
                a.set_title(f"{light}\n{classes[int(labels[i])]}", fontsize=6)
            else:
                a.set_title(classes[int(labels[i])], fontsize=6)
            for ax in (a, b):
                ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title + " (face: true class; overlay: predicted class, (x) when wrong)", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _draw_filters(conv: nn.Conv2d, n: int, path: Path, title: str) -> None:
    w = conv.weight.detach().float().mean(1).numpy()[:n]
    cols = min(8, len(w))
    rows = -(-len(w) // cols)
    fig = Figure(figsize=(1.0 * cols, 1.0 * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([]), ax.set_yticks([])
        if k < len(w):
            ax.imshow(w[k], cmap="gray")
            ax.set_title(str(k), fontsize=6)
        else:
            ax.axis("off")
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _draw_feature_maps(model: nn.Module, conv: nn.Conv2d, xs: dict[str, torch.Tensor], n: int, path: Path,
                       title: str) -> None:
    maps: dict[str, np.ndarray] = {}
    for light, x in xs.items():
        got: list[torch.Tensor] = []
        h = conv.register_forward_hook(lambda m, i, o: got.append(o.detach()))
        try:
            with torch.no_grad():
                model(x[:1])
        finally:
            h.remove()
        maps[light] = got[0][0, :n].float().numpy()
    k = min(n, len(next(iter(maps.values()))))
    fig = Figure(figsize=(0.9 * (k + 1), 1.0 * len(maps) + 0.4))
    axes = fig.subplots(len(maps), k + 1, squeeze=False)
    for i, (light, m) in enumerate(maps.items()):
        axes[i, 0].imshow(_shown(xs[light])[0], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(light, fontsize=5)
        for c in range(k):
            axes[i, c + 1].imshow(m[c], cmap="viridis")
            if i == 0:
                axes[i, c + 1].set_title(str(c), fontsize=6)
        for ax in axes[i]:
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def command(args: argparse.Namespace) -> int:
    p = params_of(args)
    res = run_explain(p, Path(args.models), roots_of(args, p), Path(args.plots))
    print(f"Grad-CAM, filters and feature maps of {len(res)} run(s) -> {args.plots}")
    return 0


def add_command(sub: SubParsers) -> None:
    sp = sub.add_parser(COMMAND, help="Grad-CAM overlays, first-layer filters and feature maps of every classifier")
    add_common(sp)
    sp.add_argument("--models", required=True, help="root of the trained FER runs (<backbone>-<input>/)")
    sp.add_argument("--prepared", required=True)
    sp.add_argument("--degraded", required=True)
    sp.add_argument("--enhanced", required=True, help="directory of the selected enhancer's output")
    sp.add_argument("--plots", required=True)
    sp.set_defaults(func=command)
