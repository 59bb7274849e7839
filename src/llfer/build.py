"""Build the components that params name: FER backbones and low-light enhancers.

Every stage that needs a network or an enhancer goes through these, so the
registry options, the params section and the checkpoint layout are read in one
place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import llfer.enhance  # noqa: F401  (registers every enhancer)
import llfer.models  # noqa: F401  (registers every backbone)

from .config import Params
from .enhance.base import Enhancer, LearnedEnhancer
from .errors import ConfigError, DataError
from .registry import BACKBONES, ENHANCERS


def backbone_options(p: Params, backbone: str) -> dict[str, Any]:
    """The registry defaults of ``backbone`` updated with ``fer.models.<backbone>``."""
    e = BACKBONES.entry(backbone, key="fer.backbones")
    opts = dict(e.defaults)
    opts.update(p.fer.models.get(backbone, {}))
    return opts


def build_backbone(p: Params, backbone: str, classes: list[str], in_channels: int) -> tuple[nn.Module, int]:
    """A FER network to train on ``classes`` and its input size (pixels): fresh weights, or those of the
    classifier named by ``fer.finetune`` (with its frozen parts; :mod:`llfer.train.finetune`)."""
    from .train import finetune

    opts = backbone_options(p, backbone)
    opts.update(num_classes=len(classes), in_channels=in_channels)
    model = BACKBONES.build(backbone, key=f"fer.models.{backbone}", **opts)
    finetune.apply(p, model, backbone, opts, list(classes))
    return model, int(opts.get("input_size", 48))


def learned_enhancer_class(name: str) -> type[LearnedEnhancer]:
    return ENHANCERS.get(name, key="enhancer")


def build_enhancer(p: Params, name: str, model_dir: Path | None = None) -> Enhancer:
    """A ready enhancer: classical from params, learned from its trained checkpoint."""
    if name in p.classical:
        return ENHANCERS.build(name, key=f"classical.{name}", **(p.classical[name] or {}))
    if name in p.learned:
        if model_dir is None:
            raise ConfigError(f"enhancer {name!r} is learned: give its model directory")
        ck = Path(model_dir) / "model.safetensors"
        if not ck.exists():
            raise DataError(f"{ck} does not exist (run train_enhancer@{name} first)")
        return learned_enhancer_class(name).load(ck)
    raise ConfigError(f"enhancer: unknown enhancer {name!r}; allowed: {', '.join(sorted(set(p.classical) | set(p.learned)))}")


def apply_enhancer(enh: Enhancer, images: np.ndarray, device: torch.device | str = "cpu",
                   batch_size: int = 256) -> np.ndarray:
    """Enhance uint8 images; learned enhancers run in batches on ``device``."""
    if isinstance(enh, LearnedEnhancer):
        return enh.enhance(images, batch_size=batch_size, device=device)
    return enh.enhance(images)
