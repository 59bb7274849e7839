"""Inception-ResNet-v2 (Szegedy et al. 2017; [mirnet-fer]) from timm.

The architecture is timm's ``inception_resnet_v2`` (a port of the Keras/TF-slim
model [mirnet-fer] takes from Keras): stem, 10 x Inception-ResNet-A, reduction A,
20 x Inception-ResNet-B, reduction B, 10 x Inception-ResNet-C, global average
pooling, dropout, classifier.  It is always built with 3 input channels; a
grey input is repeated to RGB by the input adapter (equivalent to timm's
channel-summing of the first conv for ImageNet weights, and it keeps local
ImageNet state dicts loadable as they are).

Normalisation: timm's config for this model, mean = std = 0.5 per channel
(Inception style), i.e. [0, 1] -> [-1, 1].

Minimum input size: the valid-padded stride-2 convs/pools of the stem and the
reductions need at least 75 x 75 px (74 px fails).  Inputs smaller than
``upsample_to`` (default 75, must be >= 75) are bilinearly upsampled to it
inside the model, so 48 px FER2013 faces work; pass ``upsample_to=299`` to
feed the network at its ImageNet resolution (about 16x the compute).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, LlferError
from ..registry import BACKBONES
from .common import InputAdapter, StagedBackbone, check_common, download_guard, load_local_weights, resolve_pretrained

MIN_SIZE = 75


class InceptionResNetV2FER(StagedBackbone, nn.Module):
    """Stages: the three groups of Inception-ResNet blocks, at the last three of timm's
    ``feature_info`` taps: ``repeat`` (stem + 10 x block A), ``repeat_1`` (reduction A +
    20 x block B) and ``conv2d_7b`` (reduction B, 10 x block C and the final 1x1 conv);
    timm's two stem taps (``conv2d_2b``, ``conv2d_4a``) are left out, as the ResNet stem
    is.  At 48 px (upsampled to 75 px inside): 320 x 7 x 7, 1088 x 3 x 3, 1536 x 1 x 1.
    The stage features run the network's children in their definition order (forward's
    order, which timm's own feature extraction assumes too) up to ``conv2d_7b``.
    """

    stage_names = ("repeat", "repeat_1", "conv2d_7b")

    def __init__(self, net: nn.Module, in_channels: int, upsample_to: int):
        super().__init__()
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        mean = cfg.get("mean", (0.5, 0.5, 0.5))
        std = cfg.get("std", (0.5, 0.5, 0.5))
        self.input_adapter = InputAdapter(in_channels, 3, mean, std, upsample_to)
        self.net = net

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, feats = self.input_adapter(x), []
        for name, child in self.net.named_children():
            x = child(x)
            if name in self.stage_names:
                feats.append(x)
                if name == self.stage_names[-1]:
                    return feats
        raise LlferError(f"inception_resnet_v2: timm's model has no module {self.stage_names[-1]!r}")

    def _after_stages(self, f: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_adapter(x))


@BACKBONES.register("inception_resnet_v2")
def build_inception_resnet_v2(
    num_classes: int = 7,
    in_channels: int = 1,
    input_size: int = 48,
    pretrained: bool | str = False,
    upsample_to: int = MIN_SIZE,
    drop_rate: float = 0.2,
) -> nn.Module:
    """Inception-ResNet-v2 ([mirnet-fer]) from timm; inputs under 75 px are upsampled inside the model."""
    import timm

    check_common(num_classes, in_channels, input_size)
    if int(upsample_to) < MIN_SIZE:
        raise ConfigError(f"upsample_to must be >= {MIN_SIZE} (the architecture's minimum), got {upsample_to}")
    if not 0 <= drop_rate < 1:
        raise ConfigError(f"drop_rate must be in [0, 1), got {drop_rate}")
    pre = resolve_pretrained(pretrained)

    def make(p: bool) -> nn.Module:
        return timm.create_model(
            "inception_resnet_v2", pretrained=p, num_classes=num_classes, in_chans=3,
            drop_rate=drop_rate,
        )

    net = download_guard("inception_resnet_v2", lambda: make(True)) if pre is True else make(False)
    model = InceptionResNetV2FER(net, in_channels, int(upsample_to))
    if pre and pre is not True:
        load_local_weights(model, pre, base="net", head_prefixes=("classif.",))
    return model
