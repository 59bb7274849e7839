"""Classifier checkpoints: one ``model.safetensors`` holding the weights and, in its
metadata, the config that rebuilds the network (backbone, options, input spec, classes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file
import torch
from torch import nn

import llfer.models  # noqa: F401  (registers every backbone)

from .errors import DataError
from .io import atomic_path
from .registry import BACKBONES


def save_classifier(path: Path, model: nn.Module, config: dict[str, Any]) -> None:
    """Write ``model``'s weights and ``config`` (JSON in the metadata) atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"config": json.dumps(config)})


def load_classifier(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network saved by :func:`save_classifier` (in eval mode) and its config."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"classifier checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for any damage
        raise DataError(f"{path}: not a valid classifier checkpoint ({str(e).splitlines()[0][:200]})") from None
    try:
        cfg = json.loads(meta["config"])
        if not isinstance(cfg, dict) or not isinstance(cfg.get("options"), dict) or "backbone" not in cfg:
            raise ValueError
    except (KeyError, ValueError):
        raise DataError(f"{path}: no llfer config (backbone, options) in its metadata; not a checkpoint "
                        "written by llfer train-fer") from None
    try:
        model = BACKBONES.build(cfg["backbone"], key=f"{path}: backbone", **cfg["options"])
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as e:
        raise DataError(f"{path}: weights do not fit its {cfg['backbone']!r} config "
                        f"({str(e).splitlines()[0][:200]})") from None
    # channels_last weights: :func:`llfer.train.fer.predict` then feeds NHWC batches, 3-3.5x faster on the CPU
    # for mini-Xception (converted here, outside inference mode, so that the weights stay trainable)
    model.to(memory_format=torch.channels_last)
    model.eval()
    return model, cfg
