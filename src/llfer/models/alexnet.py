"""AlexNet with a flatten + dropout + dense head ([sobel-alexnet]).

[sobel-alexnet] fine-tunes an ImageNet AlexNet on a 3-channel [gray, Sobel Gx,
Sobel Gy] input (preprocessor ``sobel3``): the fully connected layers are
removed and replaced by flatten, dropout 0.5 and a dense layer to the classes;
conv1-conv4 keep their ImageNet weights frozen and conv5 + the dense layer are
trained.

Here: torchvision's AlexNet ``features`` (5 convs; torchvision's single-GPU
variant with 64/192/384/256/256 filters rather than the paper's 96/256/384/
384/256 two-GPU layout) and its adaptive average pool to 6 x 6 (so any input
size yields 256 x 6 x 6 = 9,216 features), then dropout 0.5 and a linear
layer.  The paper feeds 227 x 227 px; the features need at least 63 x 63 px
(conv1 11x11/4 and three 3x3/2 max-pools), so inputs smaller than
``upsample_to`` (default 63, must be >= 63) are bilinearly upsampled to it
inside the model (48 px FER2013 -> 63 px; set ``upsample_to=227`` to match the
paper at about 13x the compute).  Normalisation: ImageNet mean/std (the input
channels are treated as R, G, B exactly as the paper does with its
gray/Gx/Gy stack); a 1-channel input is repeated to 3.

``freeze_convs`` (default 4: conv1-conv4, the paper's best setting, Table 2)
applies only when ``pretrained`` is set; from scratch every layer trains.
"""

from __future__ import annotations

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

MIN_SIZE = 63


class _AlexNetConvs(nn.Module):
    """torchvision's AlexNet with the given classifier (same module names and key layout,
    so torchvision's ``features.*`` weights load), built without the 58M-parameter FC
    layers that torchvision's constructor would initialise only to be thrown away."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class AlexNetFER(StagedBackbone, nn.Module):
    """Stages: the five conv blocks of ``net.features``, each conv with its ReLU and, for
    conv1, conv2 and conv5, the max-pool after it (no stem; the head is the 6 x 6 average
    pool, dropout and the dense layer).

    At 48 px (upsampled to 63 px inside): 64 x 7 x 7, 192 x 3 x 3, 384 x 3 x 3,
    256 x 3 x 3, 256 x 1 x 1.
    """

    stage_names = ("conv1", "conv2", "conv3", "conv4", "conv5")
    STAGE_ENDS = (3, 6, 8, 10, 13)  # indices into net.features after each block

    def __init__(self, num_classes: int, in_channels: int, upsample_to: int, dropout: float):
        super().__init__()
        self.input_adapter = InputAdapter(in_channels, 3, IMAGENET_MEAN, IMAGENET_STD, upsample_to)
        # flatten -> dropout -> dense ([sobel-alexnet], section 2.4.1 / 4)
        self.net = _AlexNetConvs(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(256 * 6 * 6, num_classes))
        )

    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.net.features if isinstance(m, nn.Conv2d)]

    def _before_stages(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_adapter(x)

    def _stage_blocks(self) -> list[nn.Module]:
        f = self.net.features
        return [f[a:b] for a, b in zip((0,) + self.STAGE_ENDS[:-1], self.STAGE_ENDS)]

    def _after_stages(self, f: torch.Tensor) -> torch.Tensor:
        return self.net.classifier(torch.flatten(self.net.avgpool(f), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_adapter(x))


@BACKBONES.register("alexnet")
def build_alexnet(
    num_classes: int = 7,
    in_channels: int = 1,
    input_size: int = 48,
    pretrained: bool | str = False,
    freeze_convs: int = 4,
    dropout: float = 0.5,
    upsample_to: int = MIN_SIZE,
) -> nn.Module:
    """AlexNet ([sobel-alexnet]): torchvision AlexNet convs, flatten, dropout 0.5, dense; conv1-4 frozen when pretrained."""
    check_common(num_classes, in_channels, input_size)
    if not 0 <= int(freeze_convs) <= 5:
        raise ConfigError(f"freeze_convs must be in 0..5, got {freeze_convs}")
    if int(upsample_to) < MIN_SIZE:
        raise ConfigError(f"upsample_to must be >= {MIN_SIZE} (the architecture's minimum), got {upsample_to}")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    model = AlexNetFER(num_classes, in_channels, int(upsample_to), dropout)
    pre = resolve_pretrained(pretrained)
    if pre is True:
        src = download_guard(
            "alexnet", lambda: tvm.alexnet(weights=tvm.AlexNet_Weights.IMAGENET1K_V1)
        )
        sd = {k: v for k, v in src.state_dict().items() if k.startswith("features.")}
        model.net.load_state_dict(sd, strict=False)
    elif pre:
        load_local_weights(model, pre, base="net", head_prefixes=("classifier.",))
    if pre:
        freeze(model.convs()[: int(freeze_convs)])
    return model
