"""LLENet ([ll-fer], "A joint learning method for low-light facial
expression recognition", section 3.1, Fig. 2) and its reconstruction loss
(eqs. 6-11).

Architecture, as the paper describes it:

* **ConvNeXt-Residual (CR) block** (eqs. 1-3): split the input M in two halves
  along channels, {M1, M2} = Split(M); Z1 = ConvNeXt(M1), Z2 = Residual(M2);
  Out = Conv1x1(Concat(Z1, Z2)) + M.  The ConvNeXt block is Liu et al.'s
  (depthwise 7x7, LayerNorm, 1x1 to 4x, GELU, 1x1 back, layer scale 1e-6,
  residual); the residual block is conv3x3-ReLU-conv3x3 + input (ResNet basic
  block without batch norm).
* **Downscaling module** (x ``scales`` = 3): conv 1x1 ("preprocessing") ->
  CR block (its output is the skip feature of that scale) -> 2x2 strided
  convolution, stride 2 (ST-conv) doubling the channels.
* **Upscaling module** (x 3): 2x2 transposed convolution, stride 2 (TR-conv) ->
  concatenation with the skip feature of the same scale (shallow / high-level
  feature fusion) -> CR block -> feature-enhancement (FE) block.
* **FE block** (eqs. 4-5): C_i = Conv_{(2i+1)x(2i+1)}(F), i = 1, 2, 3 (3x3, 5x5,
  7x7); FE_out = PA(CA(Concat(C1, C2, C3))) + F, with CA the squeeze-excitation
  channel attention (Hu et al., ref. [21]) and PA the pixel attention of PAN
  (Zhao et al., ref. [22]: 1x1 conv -> sigmoid -> product).
* **Reconstruction module**: a CR block, then two 1x1 convolutions to 3 channels.

Details the paper leaves open, and our choices (all documented, some params):
the widths (base ``n_feat`` doubled at each downscaling; the paper gives no
number, so the "paper" preset's 32 is our guess, "cpu" uses 8; the perceptual
VGG16 layer is relu3_3 for "paper" and the cheaper relu1_1 for "cpu"); the channels
after a concatenation are kept (TR-conv gives as many channels as the skip,
so the CR and FE blocks of the scale see 2x its width); the FE block's three
convolutions each keep the width and a 1x1 convolution maps the 3x concatenation
back to the width so the residual of eq. 5 is defined; SE reduction 16 (at
least 2 channels); GELU between the two reconstruction 1x1 convolutions and a
residual output on the gain-normalised input (below; the paper names no output
activation).  Inputs are padded to a multiple of
2^scales and cropped back.

Loss (eq. 11): L_Rec = w1 L1 + w2 L2 + w3 L, with (eq. 6)
L = wc Lc + wf Lf + wp Lp + ws Ls, where Lc (eq. 7) is L1 in HSV + L1 in HSI,
Lf (eq. 8) L1 between the Haar horizontal and vertical detail bands, Lp
(eq. 9) mean squared VGG-feature difference, Ls (eq. 10) 1 - SSIM; weights
{w1, w2, w3, wc, wf, wp, ws} = {0.1, 0.01, 1, 0.5, 0.5, 1, 1}.  The VGG is
ImageNet-pretrained in the paper: ``vgg_weights="imagenet"`` (torchvision,
online or cached) or a local file; the default None uses fixed random VGG
features (see :class:`llfer.enhance.losses.VGGPerceptual`), which is logged.

Grey faces: the hue of eq. 7 is undefined on gray pixels (FER faces are gray,
repeated to 3 channels), where its gradient grows as 1 / chroma; the hue terms
count only where the target has a chroma (:func:`llfer.enhance.losses.color_space_loss`):
on gray faces eq. 7 is its saturation and value / intensity terms.

Output (both presets, ``input_gain`` 0.5; None restores the sigmoid output on the
raw input): the input is scaled by one gain to a mean of 0.5 (capped: no pixel above 1)
(:func:`llfer.enhance.base.gain_normalise`) and the reconstruction module's
output is added to it (its last 1x1 convolution starting at 0), so the network
starts as that gain; the colour loss sees the output clamped to [0, 1].
With the sigmoid on the raw x0.1 input, short runs learned the mean face (flat
grey squares, 14 dB on the synthetic dark_pil faces against 20.9 dB for the gain).

The "cpu" preset: n_feat 8 instead of 32 (the widths double per scale: 8, 16, 32,
64) and the perceptual features at VGG16 relu1_1 instead of relu3_3 (relu1_2, the
previous choice, was a third of the training FLOPs: two 64-channel convolutions
at 48 px for every output and target).  The CR blocks, the FE blocks (3/5/7
convolutions, CA, PA), the U-Net with its 3 scales and the eq. 11 loss are the
paper's.  Speeds before / after: docs/enhancers.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...registry import ENHANCERS
from ..base import LearnedEnhancer, gain_normalise, pad_to_multiple
from ..losses import VGGPerceptual, color_space_loss, ssim_loss, wavelet_highfreq_loss

PRESETS = {
    "paper": {"n_feat": 32, "perceptual_layer": "relu3_3"},
    "cpu": {"n_feat": 8, "perceptual_layer": "relu1_1"},
}


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N x C x H x W tensor (ConvNeXt's channels-first LN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block (Liu et al. 2022): dw 7x7 -> LN -> 1x1 (4x) -> GELU -> 1x1 -> layer scale, + input."""

    def __init__(self, c: int, expansion: int = 4, layer_scale: float = 1e-6):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = LayerNorm2d(c, eps=1e-6)
        self.pw1 = nn.Conv2d(c, expansion * c, 1)
        self.pw2 = nn.Conv2d(expansion * c, c, 1)
        self.gamma = nn.Parameter(torch.full((c, 1, 1), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.pw2(F.gelu(self.pw1(self.norm(self.dw(x)))))


class ResidualBlock(nn.Module):
    """conv 3x3 -> ReLU -> conv 3x3, + input."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class CRBlock(nn.Module):
    """ConvNeXt-Residual block, eqs. (1)-(3)."""

    def __init__(self, c: int):
        super().__init__()
        if c % 2:
            raise ConfigError(f"llenet: CR block needs an even channel count, got {c}")
        self.half = c // 2
        self.convnext = ConvNeXtBlock(self.half)
        self.residual = ResidualBlock(c - self.half)
        self.fuse = nn.Conv2d(c, c, 1)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        m1, m2 = m[:, : self.half], m[:, self.half :]  # eq. (1)
        z1, z2 = self.convnext(m1), self.residual(m2)  # eq. (2)
        return self.fuse(torch.cat([z1, z2], 1)) + m  # eq. (3)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (ref. [21])."""

    def __init__(self, c: int, reduction: int = 16):
        super().__init__()
        r = max(c // reduction, 2)
        self.fc = nn.Sequential(nn.Conv2d(c, r, 1), nn.ReLU(inplace=True), nn.Conv2d(r, c, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3), keepdim=True))


class PixelAttention(nn.Module):
    """Pixel attention of PAN (ref. [22]): x * sigmoid(conv1x1(x)), a C x H x W attention map."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class FEBlock(nn.Module):
    """Feature enhancement, eqs. (4)-(5): multi-scale convs 3/5/7 -> concat -> CA -> PA (-> 1x1) + F."""

    def __init__(self, c: int, reduction: int = 16):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(c, c, 2 * i + 1, padding=i) for i in (1, 2, 3))  # eq. (4)
        self.ca = ChannelAttention(3 * c, reduction)
        self.pa = PixelAttention(3 * c)
        self.fuse = nn.Conv2d(3 * c, c, 1)  # width back to c for the residual (not in the paper)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        cat = torch.cat([b(f) for b in self.branches], 1)
        return self.fuse(self.pa(self.ca(cat))) + f  # eq. (5)


class LLENetModel(nn.Module):
    def __init__(self, n_feat: int = 32, scales: int = 3, input_gain: float | None = None):
        super().__init__()
        self.scales = scales
        self.input_gain = input_gain
        ch = [n_feat * 2**i for i in range(scales + 1)]
        self.pre = nn.ModuleList()
        self.down_cr = nn.ModuleList()
        self.st = nn.ModuleList()
        for s in range(scales):
            self.pre.append(nn.Conv2d(3 if s == 0 else ch[s], ch[s], 1))
            self.down_cr.append(CRBlock(ch[s]))
            self.st.append(nn.Conv2d(ch[s], ch[s + 1], 2, stride=2))
        self.tr = nn.ModuleList()
        self.up_cr = nn.ModuleList()
        self.fe = nn.ModuleList()
        for s in reversed(range(scales)):
            cin = ch[scales] if s == scales - 1 else 2 * ch[s + 1]
            self.tr.append(nn.ConvTranspose2d(cin, ch[s], 2, stride=2))
            self.up_cr.append(CRBlock(2 * ch[s]))
            self.fe.append(FEBlock(2 * ch[s]))
        self.rec_cr = CRBlock(2 * ch[0])
        self.rec = nn.Sequential(nn.Conv2d(2 * ch[0], ch[0], 1), nn.GELU(), nn.Conv2d(ch[0], 3, 1))
        if input_gain:  # residual output, 0 at the start: the output is the gain-normalised input
            nn.init.zeros_(self.rec[-1].weight)
            nn.init.zeros_(self.rec[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid output in (0, 1), or with ``input_gain`` the unclamped residual x + rec(x) of the gain-normalised x."""
        x = gain_normalise(x, self.input_gain)
        xp, (h, w) = pad_to_multiple(x, 2**self.scales)
        skips = []
        f = xp
        for pre, cr, st in zip(self.pre, self.down_cr, self.st):
            f = cr(pre(f))
            skips.append(f)
            f = st(f)
        for tr, cr, fe, skip in zip(self.tr, self.up_cr, self.fe, reversed(skips)):
            f = fe(cr(torch.cat([tr(f), skip], 1)))
        r = self.rec(self.rec_cr(f))
        y = xp + r if self.input_gain else torch.sigmoid(r)
        return y[..., :h, :w]


@ENHANCERS.register("llenet")
class LLENet(LearnedEnhancer):
    """LLENet ([ll-fer]): ConvNeXt-Residual U-Net with CA/PA feature enhancement; HSV/HSI, wavelet, VGG, SSIM, L1, L2 loss."""

    name = "llenet"
    paired = True

    def __init__(
        self,
        preset: str = "cpu",
        n_feat: int | None = None,
        scales: int = 3,
        w1: float = 0.1,
        w2: float = 0.01,
        w3: float = 1.0,
        wc: float = 0.5,
        wf: float = 0.5,
        wp: float = 1.0,
        ws: float = 1.0,
        wavelet_bands: str = "hv",
        perceptual_arch: str = "vgg16",
        perceptual_layer: str | None = None,
        vgg_weights: str | None = None,
        input_gain: float | None = 0.5,
    ):
        """None sizes come from ``preset`` ("paper": n_feat 32, VGG relu3_3; "cpu": n_feat 8, relu1_2).

        ``vgg_weights``: None (fixed random VGG features, offline), "imagenet"
        (torchvision), or a .pth / .safetensors file.
        """
        if preset not in PRESETS:
            raise ConfigError(f"llenet: unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
        n_feat = PRESETS[preset]["n_feat"] if n_feat is None else int(n_feat)
        if n_feat < 2 or n_feat % 2:
            raise ConfigError(f"llenet: n_feat must be even and >= 2, got {n_feat}")
        if scales < 1:
            raise ConfigError(f"llenet: scales must be >= 1, got {scales}")
        perceptual_layer = PRESETS[preset]["perceptual_layer"] if perceptual_layer is None else perceptual_layer
        super().__init__(
            preset=preset, n_feat=n_feat, scales=int(scales), w1=w1, w2=w2, w3=w3, wc=wc, wf=wf, wp=wp, ws=ws,
            wavelet_bands=wavelet_bands, perceptual_arch=perceptual_arch, perceptual_layer=perceptual_layer,
            vgg_weights=vgg_weights, input_gain=None if input_gain is None else float(input_gain),
        )
        self._perceptual: VGGPerceptual | None = None  # built on first use, not part of the checkpoint

    def build_model(self) -> nn.Module:
        return LLENetModel(int(self.config["n_feat"]), int(self.config["scales"]), self.config.get("input_gain"))

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.model(low).clamp(0, 1)

    @property
    def perceptual(self) -> VGGPerceptual:
        if self._perceptual is None:
            c = self.config
            self._perceptual = VGGPerceptual(c["perceptual_arch"], c["perceptual_layer"], c["vgg_weights"])
        return self._perceptual

    def composite_loss(self, out: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. (11) on an enhanced batch ``out`` and its normal-light target (L_res of ``joint_loss.JointLoss`` in stage joint)."""
        c = self.config
        l1 = (out - high).abs().mean()
        l2 = (out - high).pow(2).mean()
        lc = color_space_loss(out.clamp(0, 1), high)  # eq. (7); hue only where the target has one
        lf = wavelet_highfreq_loss(out, high, c["wavelet_bands"])  # eq. (8)
        lp = self.perceptual.to(out.device)(out, high) if c["wp"] else out.new_zeros(())  # eq. (9)
        ls = ssim_loss(out, high)  # eq. (10)
        big_l = c["wc"] * lc + c["wf"] * lf + c["wp"] * lp + c["ws"] * ls  # eq. (6)
        total = c["w1"] * l1 + c["w2"] * l2 + c["w3"] * big_l  # eq. (11)
        parts = {"l1": l1.item(), "l2": l2.item(), "color": lc.item(), "wavelet": lf.item(),
                 "perceptual": lp.item(), "ssim": ls.item()}
        return total, parts

    def loss(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.composite_loss(self.model(low), high)
