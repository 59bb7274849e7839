"""mini-Xception (Arriaga, Valdenegro-Toro & Ploeger 2017), [mini-xception-fer]'s FER net.

Layout, following the authors' Keras ``mini_XCEPTION`` (face_classification):

* base: two 3x3 convs with 8 filters, no padding ('valid'), no bias, each
  followed by BN + ReLU (48 -> 46 -> 44);
* 4 residual modules with 16 / 32 / 64 / 128 filters: main path = separable
  conv 3x3 ('same') + BN + ReLU, separable conv 3x3 + BN, max-pool 3x3 stride 2
  ('same'); shortcut = 1x1 conv stride 2 + BN; the two are added
  (44 -> 22 -> 11 -> 6 -> 3);
* a final 3x3 conv ('same', with bias) to ``num_classes`` maps, global average
  pooling; no dense layers.  The model returns logits (the softmax of the paper
  lives in the loss).

Parameter count for 7 classes, 1 input channel: 58,423 in Keras terms (the
number quoted by [mini-xception-fer] and the paper), which counts BN moving mean/variance;
torch ``parameters()`` hold 56,951 of them and the remaining 1,472 are BN
``running_mean``/``running_var`` buffers.  The count does not depend on the
input size.  Keras' L2 kernel regulariser (0.01) is a training choice and is
left to the optimiser's weight decay.

Input: float N x C x S x S in [0, 1], mapped to [-1, 1] as [mini-xception-fer] does.  Works
for any S >= 5 (no upsampling is needed).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import BACKBONES
from .common import (
    check_common,
    load_local_weights,
    no_imagenet,
    resolve_pretrained,
    StagedBackbone,
    scratch_adapter,
)

# Keras BatchNormalization defaults: momentum 0.99 (torch momentum 0.01), eps 1e-3.
_BN = dict(eps=1e-3, momentum=0.01)


class SeparableConv2d(nn.Sequential):
    """Keras ``SeparableConv2D`` without bias: depthwise k x k then pointwise 1x1."""

    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__(
            nn.Conv2d(cin, cin, k, padding=k // 2, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        )


class XceptionModule(nn.Module):
    """Residual module: 2 separable convs + max-pool, plus a 1x1 stride-2 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.shortcut = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout, **_BN)
        )
        self.main = nn.Sequential(
            SeparableConv2d(cin, cout),
            nn.BatchNorm2d(cout, **_BN),
            nn.ReLU(inplace=True),
            SeparableConv2d(cout, cout),
            nn.BatchNorm2d(cout, **_BN),
            # Keras MaxPooling2D(3, 2, 'same') == torch padding 1 (-inf padded): ceil(n / 2)
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class MiniXception(StagedBackbone, nn.Module):
    """Stages: the 4 residual modules (``blocks.0`` .. ``blocks.3``), after the two base convs.

    At 48 px: 16 x 22 x 22, 32 x 11 x 11, 64 x 6 x 6, 128 x 3 x 3; the head is
    the class conv and global average pooling.
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 1,
                 filters: tuple[int, ...] = (16, 32, 64, 128), base_filters: int = 8):
        super().__init__()
        self.input_adapter = scratch_adapter(in_channels)
        self.base = nn.Sequential(
            nn.Conv2d(in_channels, base_filters, 3, bias=False),
            nn.BatchNorm2d(base_filters, **_BN),
            nn.ReLU(inplace=True),
            nn.Conv2d(base_filters, base_filters, 3, bias=False),
            nn.BatchNorm2d(base_filters, **_BN),
            nn.ReLU(inplace=True),
        )
        mods, c = [], base_filters
        for f in filters:
            mods.append(XceptionModule(c, f))
            c = f
        self.blocks = nn.Sequential(*mods)
        self.stage_names = tuple(f"module{i + 1}" for i in range(len(mods)))
        self.classifier = nn.Conv2d(c, num_classes, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # Keras default initialiser: Glorot uniform, zero bias
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps before the class conv (N x 128 x S/16 x S/16)."""
        return self.blocks(self._before_stages(x))

    def _before_stages(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(self.input_adapter(x))

    def _stage_blocks(self) -> list[nn.Module]:
        return list(self.blocks)

    def _after_stages(self, f: torch.Tensor) -> torch.Tensor:
        return self.pool(self.classifier(f)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._after_stages(self.features(x))


@BACKBONES.register("mini_xception")
def build_mini_xception(
    num_classes: int = 7,
    in_channels: int = 1,
    input_size: int = 48,
    pretrained: bool | str = False,
) -> nn.Module:
    """mini-Xception (Arriaga et al. 2017; [mini-xception-fer]): 58k-parameter residual separable-conv net, no dense layers."""
    check_common(num_classes, in_channels, input_size)
    if input_size < 5:
        raise ConfigError(f"input_size={input_size}: mini_xception needs at least 5 px")
    model = MiniXception(num_classes=num_classes, in_channels=in_channels)
    pre = resolve_pretrained(pretrained)
    if pre is True:
        raise no_imagenet("mini_xception")
    if pre:
        load_local_weights(model, pre)
    return model
