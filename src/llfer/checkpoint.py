"""Classifier checkpoints: one ``model.safetensors`` holding the weights and, in its
metadata, the config that rebuilds the network (backbone, options, input spec, classes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file
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
    with safe_open(str(path), framework="pt") as f:
        cfg = json.loads((f.metadata() or {})["config"])
    model = BACKBONES.build(cfg["backbone"], **cfg["options"])
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, cfg
