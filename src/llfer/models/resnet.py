"""ResNet backbones from torchvision: ``resnet50`` ([mirnet-fer]) and ``resnet18`` ([ll-fer]).

Both wrap the torchvision architecture unchanged (so torchvision's ImageNet
weights load into ``model.net``) behind an :class:`~.common.InputAdapter`
that repeats a grey channel to RGB and normalises with the ImageNet mean/std
(always, pretrained or not, so scratch and fine-tuned checkpoints see the same
input statistics).  Inputs smaller than 32 px (Keras' minimum for ResNet50)
are bilinearly upsampled to 32 px inside the model; 48 px FER2013 faces pass
unchanged (the stem's 7x7/2 conv + max-pool then leave 12 px, layer4 2 px).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from .common import tvm

from ..errors import ConfigError
from ..registry import BACKBONES
from .common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InputAdapter,
    StagedBackbone,
    check_common,
    download_guard,
    freeze,
    load_local_weights,
    resolve_pretrained,
)

MIN_SIZE = 32
KERAS_RESNET50_LAYERS = 175  # keras.applications.ResNet50(include_top=False)
SEED_FROZEN_LAYERS = 170  # [mirnet-fer] section 3.5


class FrozenBNMixin:
    """Keep batch-norm layers whose parameters are all frozen in eval mode.

    Keras runs a ``trainable=False`` BatchNormalization in inference mode (its
    moving statistics stay fixed); torch would keep updating running stats in
    ``train()``, so frozen BN layers are switched back to eval here.
    """

    def train(self, mode: bool = True):  # type: ignore[override]
        super().train(mode)  # type: ignore[misc]
        if mode:
            for m in self.modules():  # type: ignore[attr-defined]
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    ps = list(m.parameters())
                    if ps and not any(p.requires_grad for p in ps):
                        m.eval()
        return self


def keras_resnet50_layers(net: tvm.ResNet) -> list[tuple[str, nn.Module | None]]:
    """The 175 layers of Keras' ``ResNet50(include_top=False)`` in order.

    Each entry is (Keras layer name, the torchvision module holding its weights
    or None for weightless layers: input, padding, activations, pooling, add).
    Used to translate [mirnet-fer]'s "first 170 Keras layers frozen" into torch.
    """
    out: list[tuple[str, nn.Module | None]] = [
        ("input_1", None), ("conv1_pad", None), ("conv1_conv", net.conv1),
        ("conv1_bn", net.bn1), ("conv1_relu", None), ("pool1_pad", None), ("pool1_pool", None),
    ]
    for s, layer in enumerate([net.layer1, net.layer2, net.layer3, net.layer4], start=2):
        for b, blk in enumerate(layer, start=1):
            p = f"conv{s}_block{b}_"
            out += [(p + "1_conv", blk.conv1), (p + "1_bn", blk.bn1), (p + "1_relu", None),
                    (p + "2_conv", blk.conv2), (p + "2_bn", blk.bn2), (p + "2_relu", None)]
            if blk.downsample is not None:
                out += [(p + "0_conv", blk.downsample[0]), (p + "3_conv", blk.conv3),
                        (p + "0_bn", blk.downsample[1]), (p + "3_bn", blk.bn3)]
            else:
                out += [(p + "3_conv", blk.conv3), (p + "3_bn", blk.bn3)]
            out += [(p + "add", None), (p + "out", None)]
    assert len(out) == KERAS_RESNET50_LAYERS, len(out)
    return out


class ResNetStages(StagedBackbone):
    """Stages of a torchvision ResNet held in ``self.net``: ``layer1`` .. ``layer4``.

    As in [ll-fer], whose FER perceptual loss (eq. 12) sums over ResNet-18's four
    stages: the stem (conv1, BN, ReLU, max-pool) is not a stage, and the head is
    average pooling + ``fc``.  At 48 px with the standard stem the stage maps are
    12, 6, 3 and 2 px (48, 24, 12, 6 with ResNet-18's ``small_input`` stem);
    channels 64/128/256/512 (ResNet-18) or 256/512/1024/2048 (ResNet-50).
    """

    stage_names = ("layer1", "layer2", "layer3", "layer4")

    def _before_stages(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n.maxpool(n.relu(n.bn1(n.conv1(self.input_adapter(x)))))

    def _stage_blocks(self) -> list[nn.Module]:
        return [self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]

    def _after_stages(self, f: torch.Tensor) -> torch.Tensor:
        return self.net.fc(torch.flatten(self.net.avgpool(f), 1))


class ResNet50FER(FrozenBNMixin, ResNetStages, nn.Module):
    def __init__(self, num_classes: int, in_channels: int, hidden: tuple[int, ...],
                 head_dropout: float):
        super().__init__()
        self.input_adapter = InputAdapter(in_channels, 3, IMAGENET_MEAN, IMAGENET_STD, MIN_SIZE)
        self.net = tvm.resnet50(weights=None)
        layers: list[nn.Module] = []
        c = self.net.fc.in_features
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU(inplace=True)]
            if head_dropout > 0:
                layers.append(nn.Dropout(head_dropout))
            c = h
        layers.append(nn.Linear(c, num_classes))
        self.net.fc = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_adapter(x))


class ResNet18FER(ResNetStages, nn.Module):
    def __init__(self, num_classes: int, in_channels: int, small_input: bool, dropout: float):
        super().__init__()
        self.input_adapter = InputAdapter(
            in_channels, 3, IMAGENET_MEAN, IMAGENET_STD, 0 if small_input else MIN_SIZE
        )
        self.net = tvm.resnet18(weights=None)
        self.small_input = bool(small_input)
        if small_input:
            self.net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(self.net.conv1.weight, mode="fan_out", nonlinearity="relu")
            self.net.maxpool = nn.Identity()
        fc = nn.Linear(self.net.fc.in_features, num_classes)
        self.net.fc = nn.Sequential(nn.Dropout(dropout), fc) if dropout > 0 else fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._after_stages(self.stage_features(x)[-1])


def _imagenet(name: str, ctor: Callable[..., tvm.ResNet], weights) -> tvm.ResNet:
    return download_guard(name, lambda: ctor(weights=weights))


@BACKBONES.register("resnet50")
def build_resnet50(
    num_classes: int = 7,
    in_channels: int = 1,
    input_size: int = 48,
    pretrained: bool | str = False,
    freeze_layers: int = SEED_FROZEN_LAYERS,
    hidden: tuple[int, ...] = (4096, 1024),
    head_dropout: float = 0.5,
) -> nn.Module:
    """ResNet50 ([mirnet-fer], after Khanzada et al.): torchvision ResNet50, head FC 4096 -> FC 1024 -> classes.

    ``freeze_layers`` counts layers of Keras' ``ResNet50(include_top=False)``
    (175 layers: input, paddings, convs, BNs, activations, adds, pools), which
    is how [mirnet-fer] states it: "the first 170 layers frozen".  Those 170 layers
    are everything up to ``conv5_block3_2_relu``, i.e. in torchvision terms all
    of ``net`` except ``layer4[2].conv3`` and ``layer4[2].bn3`` (the last 1x1
    conv + BN of the last bottleneck) and the new head.  Freezing applies only
    when ``pretrained`` is set (ImageNet or a local file); a scratch model
    trains every layer (freezing random weights is pointless).  Frozen BN
    layers stay in eval mode during training, as in Keras.

    Head: ``hidden`` FC sizes with ReLU and dropout ``head_dropout`` after each
    (the paper names 4096 and 1024 and a 50% dropout in Khanzada's models), then
    a linear layer to the classes (softmax is in the loss).
    """
    check_common(num_classes, in_channels, input_size)
    pre = resolve_pretrained(pretrained)
    if not 0 <= int(freeze_layers) <= KERAS_RESNET50_LAYERS:
        raise ConfigError(f"freeze_layers must be in 0..{KERAS_RESNET50_LAYERS}, got {freeze_layers}")
    if not 0 <= head_dropout < 1:
        raise ConfigError(f"head_dropout must be in [0, 1), got {head_dropout}")
    model = ResNet50FER(num_classes, in_channels, tuple(int(h) for h in hidden), head_dropout)
    if pre is True:
        src = _imagenet("resnet50", tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1)
        sd = {k: v for k, v in src.state_dict().items() if not k.startswith("fc.")}
        model.net.load_state_dict(sd, strict=False)
    elif pre:
        load_local_weights(model, pre, base="net", head_prefixes=("fc.",))
    if pre:
        layers = keras_resnet50_layers(model.net)[: int(freeze_layers)]
        freeze(m for _, m in layers if m is not None)
    return model


@BACKBONES.register("resnet18")
def build_resnet18(
    num_classes: int = 7,
    in_channels: int = 1,
    input_size: int = 48,
    pretrained: bool | str = False,
    small_input: bool = False,
    dropout: float = 0.0,
) -> nn.Module:
    """ResNet-18 ([ll-fer]'s FER net): torchvision ResNet-18 with a new fc; stage_features() gives layer1..layer4.

    ``small_input=True`` replaces the 7x7/2 stem conv and the max-pool by a
    3x3/1 conv (CIFAR style), keeping 4x more resolution in every stage: 48 px
    gives 6 x 6 maps in layer4 instead of 2 x 2, at 16x the compute.  Default
    False: the standard stem, which ImageNet weights fit and which is the only
    layout affordable on our CPUs (with ``small_input`` ImageNet/local
    torchvision weights load except ``conv1``).
    """
    check_common(num_classes, in_channels, input_size)
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    model = ResNet18FER(num_classes, in_channels, small_input, dropout)
    pre = resolve_pretrained(pretrained)
    skip = ("fc.", "conv1.") if small_input else ("fc.",)
    if pre is True:
        src = _imagenet("resnet18", tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1)
        own = model.net.state_dict()
        sd = {k: v for k, v in src.state_dict().items()
              if not k.startswith(skip) and k in own and own[k].shape == v.shape}
        model.net.load_state_dict(sd, strict=False)
    elif pre:
        load_local_weights(model, pre, base="net", head_prefixes=skip)
    return model
