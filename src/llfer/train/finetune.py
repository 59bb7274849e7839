"""Fine-tuning a FER network from a classifier this pipeline trained (``fer.finetune``).

Small FER sets ([sobel-alexnet]: JAFFE 213 faces, CK+ under 1,000) give a network a few optimizer
steps per epoch; [sobel-alexnet] therefore starts from pretrained weights and freezes conv1-4.
Offline, the pretrained weights can be a classifier that ``train_fer`` wrote on a large FER set
(FER2013, FER+): ``fer.finetune.init`` names its ``model.safetensors`` (or its folder) and
``fer.finetune.sha256`` its hash, so that DVC re-runs the stages when the file changes (the path is a
param, not a stage dependency: a stage cannot depend on a file that another experiment of the same
pipeline writes).  Every tensor that fits is loaded; the classification head is new when the class
lists differ (other names, order or number).  ``fer.finetune.freeze`` lists stages (the backbone's
``stage_names``, e.g. ``conv1`` .. ``conv4`` of AlexNet) or module names whose weights stay fixed;
their BatchNorm layers stay in eval mode (their running statistics are those of the large set).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, DataError

log = logging.getLogger("llfer")


def checkpoint_file(init: str | Path) -> Path:
    """A classifier checkpoint given as its file or its model folder."""
    path = Path(init)
    return path / "model.safetensors" if path.is_dir() else path


def head_keys(model: nn.Module, backbone: str, options: dict[str, Any]) -> set[str]:
    """State-dict keys whose shape depends on the number of classes (the classification head)."""
    from ..registry import BACKBONES

    n = int(options["num_classes"])
    other = BACKBONES.build(backbone, **{**options, "num_classes": n + 1}).state_dict()
    return {k for k, v in model.state_dict().items() if k in other and other[k].shape != v.shape}


def init_from_classifier(model: nn.Module, backbone: str, options: dict[str, Any], classes: list[str],
                         init: str | Path, sha256: str | None) -> dict[str, Any]:
    """Load the weights of an llfer classifier checkpoint into ``model`` (built with ``options``).

    Returns what was done: tensors loaded, head kept or new, the source's classes.
    """
    from ..checkpoint import load_classifier
    from ..data.download import sha256_file

    path = checkpoint_file(init)
    if not path.is_file():
        raise ConfigError(f"fer.finetune.init: {path} does not exist")
    digest = sha256_file(path)
    if sha256 is None:
        raise ConfigError(f"fer.finetune.sha256: state the hash of {path} ({digest}) so that DVC re-runs "
                          "the stages when it changes")
    if digest != sha256:
        raise ConfigError(f"fer.finetune.sha256: {path} has sha256 {digest}, not {sha256}")
    src, cfg = load_classifier(path)
    if cfg["backbone"] != backbone:
        raise ConfigError(f"fer.finetune.init: {path} is a {cfg['backbone']} classifier, not {backbone}")
    own = model.state_dict()
    heads = head_keys(model, backbone, options)
    same_classes = list(cfg.get("classes") or []) == list(classes)
    state = {k: v for k, v in src.state_dict().items()
             if k in own and v.shape == own[k].shape and (same_classes or k not in heads)}
    skipped = sorted(k for k in own if k not in state)
    bad = [k for k in skipped if k not in heads]
    if bad:
        raise DataError(f"fer.finetune.init: {path} does not fit this {backbone} (e.g. {', '.join(bad[:3])}); "
                        "its options differ (input size, channels)")
    model.load_state_dict(state, strict=False)
    info = {"init": str(path), "tensors_loaded": len(state), "new_head": not same_classes,
            "source_classes": list(cfg.get("classes") or [])}
    log.info("fine-tuning %s from %s: %d tensors, %s head", backbone, path, len(state),
             "new" if not same_classes else "its")
    return info


def freeze(model: nn.Module, names: list[str]) -> list[str]:
    """Fix the weights of the listed stages / modules; their BatchNorm layers stay in eval mode.

    ``model.train()`` is wrapped so that the frozen parts return to eval mode whenever the trainer
    switches the model to training.  Returns the module names frozen.
    """
    if not names:
        return []
    stages = dict(zip(getattr(model, "stage_names", ()), model._stage_blocks())) if hasattr(model, "_stage_blocks") else {}
    named = dict(model.named_modules())
    by_id = {id(m): n for n, m in named.items()}
    frozen: list[nn.Module] = []
    for n in names:
        block = stages.get(n)
        if isinstance(block, nn.Module):
            frozen.append(block)
        elif n in named and n:
            frozen.append(named[n])
        else:
            allowed = [s for s, b in stages.items() if isinstance(b, nn.Module)]
            raise ConfigError(f"fer.finetune.freeze: {n!r} is neither a stage ({', '.join(allowed) or 'none'}) "
                              f"nor a module of {type(model).__name__}")
    for m in frozen:
        for q in m.parameters():
            q.requires_grad_(False)
    plain_train = model.train

    def train(mode: bool = True) -> nn.Module:
        plain_train(mode)
        for m in frozen:
            m.eval()
        return model

    model.train = train  # type: ignore[method-assign]
    model.train(model.training)
    return [by_id.get(id(m), "?") for m in frozen]


def trainable_fraction(model: nn.Module) -> float:
    total = sum(q.numel() for q in model.parameters())
    return sum(q.numel() for q in model.parameters() if q.requires_grad) / max(1, total)


def apply(p: Any, model: nn.Module, backbone: str, options: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """``fer.finetune`` of params ``p`` applied to a freshly built ``model`` (nothing when ``init`` is null)."""
    from ..workers import from_root

    fc = p.fer.finetune
    if not fc.init:
        if fc.freeze:
            raise ConfigError("fer.finetune.freeze: freezing layers needs fer.finetune.init (a trained classifier)")
        return {}
    info = init_from_classifier(model, backbone, options, classes, from_root(fc.init), fc.sha256)
    info["frozen"] = freeze(model, list(fc.freeze))
    info["trainable_fraction"] = round(trainable_fraction(model), 4)
    return info

