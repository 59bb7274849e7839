"""EFC net (Putro, Litouw & Poekoel 2024; [efc-lowres]): lightweight low-resolution FER.

What the paper fixes (section 3):

* an *efficient feature convolution* (EFC) module, eq. (1)/(4)::

      EFC(x) = N(conv_ch(conv_s(N(DW_sp(x)))))

  - ``DW_sp(x) = DW(x) * SP_att(x)`` (eq. 6): a depth-wise 3x3 conv whose output
    is re-weighted by a spatial attention map ``SP_att(x) = sigmoid(conv1x1(x))``
    (eq. 8; a 1x1 conv to a single channel);
  - ``conv_s(x) = delta(conv1x1(x))`` (eqs. 2/5): a 1x1 conv that *increases*
    the channels, followed by S-Swish ``delta(x) = x / (1 + exp(-beta x))``
    (eq. 3; beta is a constant the paper does not give: parameter, default 1);
  - ``conv_ch(x) = conv1x1(x) * CH_att(x)`` (eq. 7): a 1x1 conv back down to
    the module's channels, re-weighted by channel attention
    ``CH_att(x) = sigmoid(conv1x1(GAP(x)))`` (eq. 9);
  - ``N`` = batch normalisation after the depth-wise conv and at the end;
* standard 3x3 convs at the start "to shrink the map dimension";
* classifier: 1x1 conv to 1,280 channels, global average pooling, 1x1 conv to
  the classes, softmax (here: logits);
* 513,484 parameters at 32 x 32 (Table 1, Keras, so BN moving statistics
  included), 7 classes, no pre-training.

What the paper leaves to Figure 1 (not in the text), reconstructed here and
tuned to the published parameter count:

* stem: 3x3 conv stride 2 to 32 channels + BN + S-Swish (32 px -> 16 px);
* stages of EFC modules ``(channels, modules, stride)``:
  ``(32, 1, 1), (64, 2, 2), (128, 2, 2), (160, 1, 1)`` (6 modules) with
  expansion 2 in ``conv_s`` (16 -> 8 -> 4 px at 32 px input).  The first
  module of a stage changes the channel count in its last 1x1 conv and carries
  the stride in its depth-wise conv (the spatial-attention 1x1 conv uses the
  same stride so the two maps of eq. (6) align); the other modules keep their
  channels, as the paper says ("the same size as an initial channel");
* BN + S-Swish after the 1,280-channel conv (otherwise conv -> GAP -> conv
  would collapse to one linear map);
* no residual connections (the paper contrasts EFC with residual blocks).

With these defaults the model has 520,173 torch parameters + 4,672 BN running
statistics = 524,845 in Keras terms for 7 classes and RGB input (524,269 for
grey: 519,597 + 4,672), about 2% above the published 513,484; parameter
counts do not depend on the input size.
Input is mapped [0, 1] -> [-1, 1]; any size >= 1 px works (5 px included).
``input_size`` defaults to 32, the paper's resolution (the pipeline resizes
its inputs to it); set it to 48 to keep FER2013's native size.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import BACKBONES
from .common import (
    check_common,
    load_local_weights,
    no_imagenet,
    StagedBackbone,
    resolve_pretrained,
    scratch_adapter,
)


class SSwish(nn.Module):
    """S-Swish, eq. (3): ``delta(x) = x / (1 + exp(-beta x)) = x * sigmoid(beta x)``."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class SpatialAttention(nn.Module):
    """Eq. (8): ``SP_att(x) = sigmoid(conv1x1(x))`` with one output channel."""

    def __init__(self, cin: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, 1, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


class ChannelAttention(nn.Module):
    """Eq. (9): ``CH_att(x) = sigmoid(conv1x1(GAP(x)))`` -> N x cout x 1 x 1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x.mean(dim=(2, 3), keepdim=True)))


class EFC(nn.Module):
    """EFC module with attention, eq. (4): ``N(conv_ch(conv_s(N(DW_sp(x)))))``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expansion: float = 2.0,
                 beta: float = 1.0):
        super().__init__()
        hidden = max(1, int(round(cin * expansion)))
        self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.sp_att = SpatialAttention(cin, stride)  # eqs. (6), (8)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv_s = nn.Conv2d(cin, hidden, 1)  # eqs. (2), (5)
        self.act = SSwish(beta)  # eq. (3)
        self.conv_ch = nn.Conv2d(hidden, cout, 1, bias=False)  # eq. (7)
        self.ch_att = ChannelAttention(hidden, cout)  # eq. (9)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(self.dw(x) * self.sp_att(x))  # N(DW_sp(x)), eq. (6)
        y = self.act(self.conv_s(y))  # conv_s, eq. (5)
        y = self.conv_ch(y) * self.ch_att(y)  # conv_ch, eq. (7)
        return self.bn2(y)


class EFCNet(StagedBackbone, nn.Module):
    """Stages: the groups of EFC modules given by ``stages`` (one entry = one stage), after the stem.

    With the default ``stages`` at 48 px: 32 x 24 x 24, 64 x 12 x 12,
    128 x 6 x 6, 160 x 6 x 6 (at the paper's 32 px: 16, 8, 4, 4 px).  The head
    (1,280-channel 1x1 conv, pooling, classifier) is not a stage.  The modules
    stay one flat ``blocks`` sequence (checkpoint keys unchanged); ``stage_ends``
    marks where each stage ends in it.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 1,
        stem_channels: int = 32,
        stages: Sequence[Sequence[int]] = ((32, 1, 1), (64, 2, 2), (128, 2, 2), (160, 1, 1)),
        expansion: float = 2.0,
        last_channels: int = 1280,
        beta: float = 1.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.input_adapter = scratch_adapter(in_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
            SSwish(beta),
        )
        blocks, c, ends = [], stem_channels, []
        for spec in stages:
            if len(spec) != 3:
                raise ConfigError(f"efcnet stages: each entry is (channels, modules, stride), got {spec}")
            cout, n, stride = (int(v) for v in spec)
            for i in range(n):
                blocks.append(EFC(c, cout, stride if i == 0 else 1, expansion, beta))
                c = cout
            ends.append(len(blocks))
        self.blocks = nn.Sequential(*blocks)
        self.stage_ends = tuple(e for i, e in enumerate(ends) if e > (ends[i - 1] if i else 0))
        self.stage_names = tuple(f"stage{i + 1}" for i in range(len(self.stage_ends)))
        self.head = nn.Sequential(
            nn.Conv2d(c, last_channels, 1, bias=False),
            nn.BatchNorm2d(last_channels),
            SSwish(beta),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(last_channels, num_classes, 1)
        if self.classifier.weight.is_meta:  # built on the meta device (llfer check's probe): no values to draw
            return  # (torch's meta normal_ imports torch._dynamo: 1.2 s at every stage's start)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # The classifier's fan_out is num_classes, so the kaiming fan_out init above gives it std
        # sqrt(2 / 7) and initial logits of std ~10 over 1,280 features (cross-entropy ~9 at the
        # first step): start it small instead, as torchvision does for its last layers.
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        # Same trap in the attention convs of eqs. (8)/(9): the spatial one has fan_out 1, so kaiming
        # fan_out gives it std sqrt(2) and pre-sigmoid values of std ~10 over 32-160 BN'd channels: the
        # gates start saturated at 0/1 (little gradient).  On 8,000 FER+ faces at 20 px, 4 epochs of Adam
        # 5e-4 reached 38 % training accuracy that way and 69 % with fan-in init (PyTorch's default for
        # conv layers), which starts the gates near sigmoid(0) = 0.5, where they can learn.
        for m in self.modules():
            if isinstance(m, (SpatialAttention, ChannelAttention)):
                m.conv.reset_parameters()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """1,280-channel maps before pooling."""
        return self.head(self.blocks(self._before_stages(x)))

    def _before_stages(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(self.input_adapter(x))

    def _stage_blocks(self) -> list[nn.Module]:
        starts = (0,) + self.stage_ends[:-1]
        return [self.blocks[a:b] for a, b in zip(starts, self.stage_ends)]

    def _after_stages(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.head(f)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._after_stages(self.blocks(self._before_stages(x)))


@BACKBONES.register("efcnet")
def build_efcnet(
    num_classes: int = 7,
    in_channels: int = 1,
    input_size: int = 32,
    pretrained: bool | str = False,
    beta: float = 1.0,
    expansion: float = 2.0,
    stem_channels: int = 32,
    stages: Sequence[Sequence[int]] = ((32, 1, 1), (64, 2, 2), (128, 2, 2), (160, 1, 1)),
    last_channels: int = 1280,
    dropout: float = 0.0,
) -> nn.Module:
    """EFC net ([efc-lowres]): depth-wise EFC modules with spatial/channel attention and S-Swish, ~513k params."""
    check_common(num_classes, in_channels, input_size)
    if beta <= 0:
        raise ConfigError(f"efcnet beta must be > 0, got {beta}")
    model = EFCNet(
        num_classes=num_classes,
        in_channels=in_channels,
        stem_channels=stem_channels,
        stages=stages,
        expansion=expansion,
        last_channels=last_channels,
        beta=beta,
        dropout=dropout,
    )
    pre = resolve_pretrained(pretrained)
    if pre is True:
        raise no_imagenet("efcnet")
    if pre:
        load_local_weights(model, pre)
    return model
