"""MIRNet (Zamir et al., "Learning Enriched Features for Real Image Restoration
and Enhancement", ECCV 2020), written from the paper and checked against the
structure of the official code (swz30/MIRNet).

Structure: conv 3x3 -> ``n_rrg`` recursive residual groups (RRG) -> conv 3x3,
plus a global residual (output = input + net(input)).  An RRG is ``n_mrb``
multi-scale residual blocks (MRB) + conv 3x3 with a residual.  An MRB is a grid
of ``height`` streams (scales 1, 1/2, 1/4, ... with n_feat, 2 n_feat, 4 n_feat
channels) and ``width`` columns of dual attention units (DAU):

* column 1: stream j gets stream j-1 downsampled by 2 (residual down-sampling);
* columns 2..width: every stream j first fuses all streams, each resampled to
  scale j (residual up/down-sampling), by selective kernel feature fusion (SKFF);
* the output fuses all streams upsampled to full resolution by SKFF, then
  conv 3x3 and a residual.

DAU: conv-PReLU-conv, then spatial attention (max & mean over channels -> conv
5x5 -> sigmoid) and channel attention (squeeze-excitation, reduction 8) in
parallel, concatenated, conv 1x1, residual.  SKFF (reduction 8, d = max(C/8, 4)):
sum the streams, global average pool, 1x1 conv + PReLU, one 1x1 conv per stream,
softmax across streams, weighted sum.  Residual down-sampling: [1x1-PReLU-3x3-
PReLU-antialiased blur-pool /2 - 1x1 (2x channels)] + [blur-pool /2 - 1x1];
residual up-sampling: [1x1-PReLU-transposed conv 3x3 x2-PReLU-1x1 (1/2 channels)]
+ [bilinear x2 - 1x1].  Resampling by 4 chains two x2 modules.  No biases.

Weight sharing, as in the official code (which is how the published network has
31.8 M rather than ~44 M parameters):

* the DAU of a stream is one module used by every column of the block
  (official ``[DAU(...)] * width``);
* one down-sampling module per (channels, factor) serves both the first column
  and the fusion inputs; the fusion up-samplers and the final up-samplers
  ("last_up") are separate modules;
* stream 0's SKFF is used both in the column fusions and for the final fusion;
  each stream's SKFF is shared by all fusion columns.

One deliberate difference: the official DAU's PReLU is a default argument
created once, so a single PReLU slope is shared by every DAU of the network;
here each DAU has its own (n_rrg * n_mrb * height - 1 = 17 more parameters for
the paper size).  Parameter counts: official (paper) configuration n_feat 64,
3 RRG x 2 MRB, height 3, width 2: 31,787,436 here vs 31,787,419 for the
official ``MIRNet()`` (counted by instantiating the official model); the "cpu"
preset (n_feat 16, 1 RRG x 1 MRB, height 2, width 2: two scales, about 4x
cheaper than height 3; see below): 58,190 (official code at that size: 58,189); with
height 3 it would be 333,394.  With the official weights mapped onto this module
(and the shared PReLU slope copied to every DAU) the outputs were checked
identical to the official model's (n_feat 16, 2 RRG, height 3, width 3).

Training loss: Charbonnier (eps 1e-3), as in MIRNet.  Inputs are padded to a
multiple of 2^(height-1) and the output cropped back.

Input (both presets, ``input_gain`` 0.5; None restores the raw input): each image is
scaled by one gain (:func:`llfer.enhance.base.gain_normalise`: the ``gain``
enhancer's to a mean of 0.5, capped so that no pixel exceeds 1) before conv_in, and conv_out starts at zero, so the global residual
x + f(x) starts as that gain and f learns what a gain cannot.  Without it a
face darkened x0.1 spans 0..25 of 255, f must learn a x10 gain through a bias-free
network, and short runs gave dim blurs (12 dB on the synthetic dark_pil faces,
against 20.9 dB for the gain).  Parameter-free: the counts above are unchanged.

The "cpu" preset (what it changes, and why): n_feat 16 instead of 64, 1 RRG x 1 MRB
instead of 3 x 2, two scales (48 and 24 px for a 48 px face) instead of three
(a 12 px stream of a 48 px face holds little but the face's outline, and the third
stream is 3/4 of the cost), and 2 x 2 average pooling instead of the anti-aliased
BlurPool (``downsample: avg``; a depthwise 3 x 3 filter with reflect padding, per
down-sampling, for smoothing that a 2 x 2 box already gives at this size).  The
DAU, SKFF, residual up / down-sampling, weight sharing and the global residual are
the paper's.  Speeds before / after: docs/enhancers.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...registry import ENHANCERS
from ..base import LearnedEnhancer, gain_normalise, pad_to_multiple
from ..losses import charbonnier

PRESETS = {
    "paper": {"n_feat": 64, "n_rrg": 3, "n_mrb": 2, "height": 3, "width": 2, "downsample": "blur"},
    "cpu": {"n_feat": 16, "n_rrg": 1, "n_mrb": 1, "height": 2, "width": 2, "downsample": "avg"},
}


def conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


def conv1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, bias=False)


class BlurPool(nn.Module):
    """Anti-aliased stride-2 down-sampling: reflect pad 1, fixed [1 2 1]^T [1 2 1] / 16 depthwise filter."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = torch.outer(k, k) / 16.0
        self.register_buffer("kernel", k.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "reflect" if min(x.shape[-2:]) > 1 else "replicate"
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), self.kernel, stride=2, groups=x.shape[1])


def pool2(channels: int, kind: str) -> nn.Module:
    """Down-sampling by 2 of the residual down-sampler: "blur" (the paper's anti-aliased BlurPool) or "avg"
    (2 x 2 average pooling: no padding, no depthwise convolution; at 48 px the streams are 24 px, where
    the 3 x 3 blur's extra smoothing buys nothing that the 2 x 2 box does not)."""
    if kind == "blur":
        return BlurPool(channels)
    if kind == "avg":
        return nn.AvgPool2d(2, ceil_mode=True)
    raise ConfigError(f"mirnet: downsample must be 'blur' or 'avg', got {kind!r}")


class SpatialAttention(nn.Module):
    def __init__(self, kernel: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(pooled))


class ChannelAttention(nn.Module):
    def __init__(self, c: int, reduction: int = 8):
        super().__init__()
        r = max(c // reduction, 1)
        self.fc = nn.Sequential(conv1(c, r), nn.ReLU(inplace=True), conv1(r, c), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3), keepdim=True))


class DAU(nn.Module):
    """Dual attention unit (paper Fig. 2c)."""

    def __init__(self, c: int, reduction: int = 8):
        super().__init__()
        self.body = nn.Sequential(conv3(c, c), nn.PReLU(), conv3(c, c))
        self.sa = SpatialAttention()
        self.ca = ChannelAttention(c, reduction)
        self.fuse = conv1(2 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.body(x)
        return x + self.fuse(torch.cat([self.sa(m), self.ca(m)], 1))


class SKFF(nn.Module):
    """Selective kernel feature fusion of ``n`` same-shape streams (paper Fig. 2b)."""

    def __init__(self, c: int, n: int, reduction: int = 8):
        super().__init__()
        d = max(c // reduction, 4)
        self.squeeze = nn.Sequential(conv1(c, d), nn.PReLU())
        self.select = nn.ModuleList(conv1(d, c) for _ in range(n))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        stack = torch.stack(feats, 1)  # N x n x C x H x W
        z = self.squeeze(stack.sum(1).mean(dim=(2, 3), keepdim=True))
        att = torch.softmax(torch.stack([s(z) for s in self.select], 1), dim=1)
        return (stack * att).sum(1)


class ResidualDown(nn.Module):
    """Residual down-sampling by 2, doubling the channels (paper Fig. 3a)."""

    def __init__(self, c: int, downsample: str = "blur"):
        super().__init__()
        self.top = nn.Sequential(conv1(c, c), nn.PReLU(), conv3(c, c), nn.PReLU(), pool2(c, downsample), conv1(c, 2 * c))
        self.bot = nn.Sequential(pool2(c, downsample), conv1(c, 2 * c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


class ResidualUp(nn.Module):
    """Residual up-sampling by 2, halving the channels (paper Fig. 3b)."""

    def __init__(self, c: int):
        super().__init__()
        self.top = nn.Sequential(
            conv1(c, c), nn.PReLU(),
            nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1, bias=False), nn.PReLU(),
            conv1(c, c // 2),
        )
        self.bot = conv1(c, c // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.top(x) + self.bot(up)


def down_chain(c: int, steps: int, downsample: str = "blur") -> nn.Sequential:
    return nn.Sequential(*[ResidualDown(c * 2**i, downsample) for i in range(steps)])


def up_chain(c: int, steps: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualUp(c // 2**i) for i in range(steps)])


class MRB(nn.Module):
    """Multi-scale residual block (paper Fig. 2a) with the official weight sharing (module docstring)."""

    def __init__(self, c: int, height: int, width: int, downsample: str = "blur"):
        super().__init__()
        self.height, self.width = height, width
        chans = [c * 2**j for j in range(height)]
        self.dau = nn.ModuleList(DAU(ch) for ch in chans)  # one per stream, used by every column
        # down[f"{j}_{s}"]: from stream j down by 2^s; up[f"{j}_{s}"]: from stream j up by 2^s
        self.down = nn.ModuleDict()
        self.up = nn.ModuleDict()
        self.last_up = nn.ModuleDict()
        for j in range(height):
            for s in range(1, height - j):
                self.down[f"{j}_{s}"] = down_chain(chans[j], s, downsample)
            for s in range(1, j + 1):
                self.up[f"{j}_{s}"] = up_chain(chans[j], s)
        for j in range(1, height):
            self.last_up[str(j)] = up_chain(chans[j], j)
        self.skff = nn.ModuleList(SKFF(ch, height) for ch in chans)  # skff[0] also fuses the output
        self.conv_out = conv3(c, c)

    def resample(self, x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
        if src == dst:
            return x
        if src < dst:
            return self.down[f"{src}_{dst - src}"](x)
        return self.up[f"{src}_{src - dst}"](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        streams = []
        h = x
        for j in range(self.height):
            h = self.dau[j](h if j == 0 else self.down[f"{j - 1}_1"](h))
            streams.append(h)
        for _ in range(1, self.width):
            fused = [self.skff[j]([self.resample(s, k, j) for k, s in enumerate(streams)]) for j in range(self.height)]
            streams = [self.dau[j](f) for j, f in enumerate(fused)]
        full = [s if k == 0 else self.last_up[str(k)](s) for k, s in enumerate(streams)]
        return x + self.conv_out(self.skff[0](full))


class RRG(nn.Module):
    """Recursive residual group: MRBs + conv 3x3, with a residual."""

    def __init__(self, c: int, n_mrb: int, height: int, width: int, downsample: str = "blur"):
        super().__init__()
        self.body = nn.Sequential(*[MRB(c, height, width, downsample) for _ in range(n_mrb)], conv3(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MIRNetModel(nn.Module):
    def __init__(self, n_feat: int = 64, n_rrg: int = 3, n_mrb: int = 2, height: int = 3, width: int = 2,
                 downsample: str = "blur", input_gain: float | None = None):
        super().__init__()
        self.multiple = 2 ** (height - 1)
        self.input_gain = input_gain
        self.conv_in = conv3(3, n_feat)
        self.body = nn.Sequential(*[RRG(n_feat, n_mrb, height, width, downsample) for _ in range(n_rrg)])
        self.conv_out = conv3(n_feat, 3)
        if input_gain:
            nn.init.zeros_(self.conv_out.weight)  # f = 0 at the start: the output is the gain-normalised input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unclamped restoration x + f(x) (x gain-normalised when ``input_gain``); the enhancer clamps at inference."""
        x = gain_normalise(x, self.input_gain)
        xp, (h, w) = pad_to_multiple(x, self.multiple)
        y = xp + self.conv_out(self.body(self.conv_in(xp)))
        return y[..., :h, :w]


@ENHANCERS.register("mirnet")
class MIRNet(LearnedEnhancer):
    """MIRNet (Zamir et al. 2020): multi-scale residual blocks with dual attention and SKFF; Charbonnier loss."""

    name = "mirnet"
    paired = True

    def __init__(
        self,
        preset: str = "paper",
        n_feat: int | None = None,
        n_rrg: int | None = None,
        n_mrb: int | None = None,
        height: int | None = None,
        width: int | None = None,
        downsample: str | None = None,
        charbonnier_eps: float = 1e-3,
        input_gain: float | None = 0.5,
    ):
        """Sizes left as None come from ``preset``: "paper" (64, 3 RRG x 2 MRB, height 3, width 2, BlurPool)
        or "cpu" (16, 1 x 1, height 2, width 2, 2 x 2 average pooling).  ``input_gain``: the input is
        gain-normalised to this mean (:func:`llfer.enhance.base.gain_normalise`; None: the raw input)."""
        if preset not in PRESETS:
            raise ConfigError(f"mirnet: unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
        given = {"n_feat": n_feat, "n_rrg": n_rrg, "n_mrb": n_mrb, "height": height, "width": width}
        sizes = {k: (PRESETS[preset][k] if v is None else int(v)) for k, v in given.items()}
        if sizes["height"] < 1 or sizes["width"] < 1 or sizes["n_feat"] < 8:
            raise ConfigError(f"mirnet: height and width must be >= 1 and n_feat >= 8, got {sizes}")
        downsample = PRESETS[preset]["downsample"] if downsample is None else downsample
        pool2(1, downsample)  # checks the name
        super().__init__(preset=preset, **sizes, downsample=downsample, charbonnier_eps=charbonnier_eps,
                         input_gain=None if input_gain is None else float(input_gain))

    def build_model(self) -> nn.Module:
        c = self.config
        return MIRNetModel(c["n_feat"], c["n_rrg"], c["n_mrb"], c["height"], c["width"],
                           c.get("downsample", "blur"), c.get("input_gain"))

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.model(low).clamp(0, 1)

    def loss(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        l = charbonnier(self.model(low), high, float(self.config["charbonnier_eps"]))
        return l, {"charbonnier": l.item()}
