"""Losses shared by the learned enhancers (``joint_loss.py`` adds the FER terms of the joint stage).

All functions take float tensors N x C x H x W (RGB in [0, 1] where colour is
involved) and return a scalar tensor, differentiable.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LlferError

log = logging.getLogger(__name__)

_EPS = 1e-6


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss mean(sqrt((x - y)^2 + eps^2)) (MIRNet's training loss, eps = 1e-3)."""
    return torch.sqrt((x - y).pow(2) + eps * eps).mean()


# -- SSIM -----------------------------------------------------------------------------------------
def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).expand(channels, 1, size, size).contiguous()


def gaussian_ssim(
    x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5,
    c1: float = 0.01**2, c2: float = 0.03**2,
) -> torch.Tensor:
    """Differentiable batch-mean SSIM (Wang et al. 2004) with a Gaussian window (11, sigma 1.5), for losses.

    Per channel, 'valid' windows, one scalar for the whole batch.  Data range 1
    (c1 = 0.01^2, c2 = 0.03^2 as in LLENet eq. 10).  Images smaller than the
    window use the largest odd window that fits.  Not the quality metric: the
    per-image score of scikit-image's definition (7 x 7 uniform window) is
    :func:`llfer.metrics.quality.ssim`.
    """
    size = min(window, x.shape[-2], x.shape[-1])
    size = size if size % 2 else size - 1
    size = max(size, 1)
    w = _gaussian_window(size, sigma, x.shape[1], x)
    conv = lambda t: F.conv2d(t, w, groups=x.shape[1])  # noqa: E731
    mu_x, mu_y = conv(x), conv(y)
    sxx = conv(x * x) - mu_x**2
    syy = conv(y * y) - mu_y**2
    sxy = conv(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).mean()


def ssim_loss(x: torch.Tensor, y: torch.Tensor, **kw: float) -> torch.Tensor:
    """1 - SSIM(x, y) (LLENet eq. 10)."""
    return 1.0 - gaussian_ssim(x, y, **kw)


# -- colour spaces ----------------------------------------------------------------------------------
def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> HSV with every channel in [0, 1] (hue / 360 degrees), differentiable a.e."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v, _ = x.max(1)
    mn, _ = x.min(1)
    c = v - mn
    s = c / (v + _EPS)
    cs = c + _EPS
    h = torch.where(
        v == r, ((g - b) / cs) % 6.0,
        torch.where(v == g, (b - r) / cs + 2.0, (r - g) / cs + 4.0),
    )
    h = torch.where(c > 0, h / 6.0, torch.zeros_like(h))
    return torch.stack([h, s, v], 1)


def rgb_to_hsi(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> HSI (Gonzalez & Woods) with hue / 2 pi, saturation, intensity in [0, 1]."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    i = (r + g + b) / 3.0
    s = 1.0 - x.min(1)[0] / (i + _EPS)
    num = 0.5 * ((r - g) + (r - b))
    den = torch.sqrt((r - g) ** 2 + (r - b) * (g - b) + _EPS)
    theta = torch.acos((num / den).clamp(-1 + 1e-6, 1 - 1e-6))
    h = torch.where(b > g, 2 * math.pi - theta, theta) / (2 * math.pi)
    return torch.stack([h, s.clamp(0, 1), i], 1)


def color_space_loss(x: torch.Tensor, y: torch.Tensor, min_chroma: float = 1.0 / 255) -> torch.Tensor:
    """LLENet eq. 7: L1 in HSV + L1 in HSI (hue compared linearly, as written in the paper).

    Hue is undefined for gray pixels: there the HSV and HSI hue of the output is the angle of rounding
    noise between its channels, whose gradient grows as 1 / chroma (unstable on the gray FER faces).  The
    hue differences therefore count only at pixels whose target ``y`` has a chroma (max - min over the
    channels) above ``min_chroma`` (one 8-bit level); on gray targets the hue terms are 0 and eq. 7 reduces
    to its saturation and value / intensity terms (saturation 0 pulls the output to gray).  Each term is
    the mean over all pixels, as before, so colour images score as in the paper.
    """
    hx, hy = rgb_to_hsv(x), rgb_to_hsv(y)
    ix, iy = rgb_to_hsi(x), rgb_to_hsi(y)
    coloured = ((y.amax(1) - y.amin(1)) > min_chroma).to(x.dtype)  # N x H x W
    zero = torch.zeros_like(coloured)
    hue_w = torch.stack([coloured, zero + 1, zero + 1], 1)
    return ((hx - hy).abs() * hue_w).mean() + ((ix - iy).abs() * hue_w).mean()


# -- Haar wavelet -----------------------------------------------------------------------------------
def haar_dwt(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One-level 2-D Haar transform per channel, equal to ``pywt.dwt2(x, 'haar')``.

    Returns (cA, cH, cV, cD) like pywt (cH: horizontal detail = row differences,
    cV: vertical detail = column differences, cD: diagonal).  Odd sizes are padded
    by repeating the last row / column, which is pywt's default 'symmetric' mode
    for a length-2 filter.
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, (a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2


def wavelet_highfreq_loss(x: torch.Tensor, y: torch.Tensor, bands: str = "hv") -> torch.Tensor:
    """LLENet eq. 8: L1 between Haar high-frequency bands ('h' horizontal, 'v' vertical, 'd' diagonal)."""
    _, xh, xv, xd = haar_dwt(x)
    _, yh, yv, yd = haar_dwt(y)
    pairs = {"h": (xh, yh), "v": (xv, yv), "d": (xd, yd)}
    if not bands or set(bands) - set(pairs):
        raise LlferError(f"wavelet bands must be letters of 'hvd', got {bands!r}")
    return sum((pairs[k][0] - pairs[k][1]).abs().mean() for k in bands) / len(bands)


# -- perceptual --------------------------------------------------------------------------------------
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_logged: set[str] = set()


def _log_once(msg: str, level: int = logging.INFO) -> None:
    if msg not in _logged:
        _logged.add(msg)
        log.log(level, msg)


_VGG_CFG = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg_features(arch: str) -> tuple[list[nn.Module], list[str]]:
    """The layers of torchvision's VGG ``features`` (same indices, no batch norm) and their names."""
    layers: list[nn.Module] = []
    names: list[str] = []
    cin, block, conv = 3, 1, 0
    for v in _VGG_CFG[arch]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            cin = int(v)
    return layers, names


class VGGPerceptual(nn.Module):
    """Perceptual loss: mean squared difference of VGG features (LLENet eq. 9), frozen.

    ``arch``: "vgg16" or "vgg19"; ``layer``: the last feature kept, e.g.
    "relu3_3" (Johnson et al.) or "relu5_4".  Inputs in [0, 1] are normalised
    with the ImageNet mean / std.  ``weights``:

    * "imagenet": torchvision's ImageNet weights through its normal mechanism
      (the torch hub cache, downloading if missing); if that fails (offline, no
      cache) it falls back to random features, with a warning;
    * a path to a .pth / .pt state_dict (``torch.load``) or a .safetensors file,
      of a whole torchvision VGG ("features.0.weight", ...) or of its features;
    * None: **random-feature perceptual loss** -- the VGG features initialised by
      torchvision's default initialisation under a fixed seed (``seed``), the
      same on every machine.  Random conv features still measure local structure
      differences, but they are not the paper's ImageNet features.

    What was used is logged once (INFO; WARNING for a fallback) and kept in
    :attr:`source`.
    """

    def __init__(self, arch: str = "vgg16", layer: str = "relu3_3", weights: str | None = None, seed: int = 0):
        super().__init__()
        if arch not in _VGG_CFG:
            raise LlferError(f"perceptual arch must be vgg16 or vgg19, got {arch!r}")
        layers, names = vgg_features(arch)
        if layer not in names:
            raise LlferError(f"perceptual layer {layer!r} not in {arch}; allowed: {', '.join(names)}")
        self.features = nn.Sequential(*layers[: names.index(layer) + 1])
        self.source = ""
        if weights == "imagenet":
            try:
                import torchvision

                enum = {"vgg16": torchvision.models.VGG16_Weights, "vgg19": torchvision.models.VGG19_Weights}[arch]
                state = enum.IMAGENET1K_V1.get_state_dict(progress=False)
                self._load_state(state, "torchvision")
                self.source = f"{arch} ImageNet weights (torchvision)"
            except Exception as e:  # offline and not in the torch hub cache
                _log_once(f"VGGPerceptual: could not get torchvision ImageNet weights for {arch} "
                          f"({type(e).__name__}: {e}); falling back to random features", logging.WARNING)
        elif weights is not None:
            self._load_file(weights)
            self.source = f"{arch} weights from {weights}"
        if not self.source:
            # torchvision VGG's own initialisation (kaiming normal, fan_out, zero bias) under a fixed seed
            gen = torch.Generator().manual_seed(seed)
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                    with torch.no_grad():
                        m.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=gen)
                        m.bias.zero_()
            self.source = f"{arch} random features (fixed seed {seed}; not ImageNet)"
        self.source += f", up to {layer}"
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        _log_once(f"perceptual loss uses {self.source}", logging.WARNING if "random" in self.source else logging.INFO)

    def _load_file(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if not p.exists():
            raise LlferError(f"VGG weights file {p} does not exist")
        try:
            if p.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(p))
            else:
                state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:
            raise LlferError(f"{p}: cannot read VGG weights ({e})") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        self._load_state(state, str(p))

    def _load_state(self, state: dict[str, torch.Tensor], where: str) -> None:
        """Load a torchvision VGG state_dict ("features.N.weight") or a features-only one ("N.weight")."""
        state = {k[len("features."):] if k.startswith("features.") else k: v for k, v in state.items()}
        own = self.features.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise LlferError(f"{where}: not VGG feature weights (missing {missing[:3]})")
        bad = [k for k in own if state[k].shape != own[k].shape]
        if bad:
            raise LlferError(f"{where}: VGG weight shapes do not fit ({bad[:3]})")
        self.features.load_state_dict({k: state[k] for k in own})

    def train(self, mode: bool = True) -> "VGGPerceptual":
        return super().train(False)  # always frozen / eval

    def feats(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            fy = self.feats(y)
        return F.mse_loss(self.feats(x), fy)
