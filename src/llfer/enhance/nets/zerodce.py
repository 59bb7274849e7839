"""Zero-DCE: zero-reference deep curve estimation (Guo et al., CVPR 2020).

DCE-Net predicts, per pixel, the parameters of ``n_iter`` quadratic
light-enhancement curves LE(x) = x + a * x * (1 - x) (paper eq. 1-3), applied
iteratively to each colour channel.  It is trained without reference images by
four non-reference losses (paper section 3.3):

* spatial consistency L_spa over 4x4 regions and their 4 neighbours (eq. 4),
* exposure control L_exp towards well-exposedness E = 0.6 over P x P patches (eq. 5),
* colour constancy L_col (grey-world, eq. 6),
* illumination smoothness L_tvA on the curve parameter maps A (eq. 7).

Weights: the paper writes L = L_spa + L_exp + 0.5 L_col + 20 L_tvA; the
official training script uses L = L_spa + 10 L_exp + 5 L_col + 200 L_tvA
(with its own TV normalisation).  We default to the official code's weights
(``w_tv = 200`` etc.) with TV = mean((dA/dx)^2) + mean((dA/dy)^2); all are
params.  The paper's exposure patch is 16x16 on 256x256 training crops; for
48x48 faces we default to 8x8 (``exposure_patch``).

Parameter count (default): 79,416, equal to the official DCE-Net.

Input (``input_gain`` 0.5; None restores the raw input): the curves are applied to
the image scaled by one gain to a mean of 0.5, capped so that no pixel exceeds 1
(:func:`llfer.enhance.base.gain_normalise`, the ``gain`` enhancer), and conv7
starts at zero (A = 0: identity curves), so the network starts as that gain
and its zero-reference losses (unchanged; L_spa compares with the curves' input)
shape the curves from there.  Parameter-free.  Both presets build the official
DCE-Net (already CPU-sized).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...registry import ENHANCERS
from ..base import LearnedEnhancer, gain_normalise

PRESETS = ("cpu", "paper")


class DCENet(nn.Module):
    """7 conv 3x3 layers of ``n_feat`` channels with symmetric skip concatenations.

    conv1-4 are plain; conv5 takes [x3, x4], conv6 [x2, x5], conv7 [x1, x6] and
    outputs 3 * n_iter curve maps through tanh (so a in [-1, 1]).
    """

    def __init__(self, n_feat: int = 32, n_iter: int = 8, input_gain: float | None = None):
        super().__init__()
        self.n_iter = n_iter
        self.input_gain = input_gain
        c = n_feat
        self.conv1 = nn.Conv2d(3, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.conv3 = nn.Conv2d(c, c, 3, padding=1)
        self.conv4 = nn.Conv2d(c, c, 3, padding=1)
        self.conv5 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.conv6 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.conv7 = nn.Conv2d(2 * c, 3 * n_iter, 3, padding=1)
        if input_gain:  # A = 0 at the start: identity curves on the gain-normalised input
            nn.init.zeros_(self.conv7.weight)
            nn.init.zeros_(self.conv7.bias)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The curves' input: x, or with ``input_gain`` x gain-normalised and clipped to [0, 1]."""
        return gain_normalise(x, self.input_gain).clamp(0, 1) if self.input_gain else x

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        """Curve parameter maps A, N x 3*n_iter x H x W in [-1, 1]."""
        x1 = F.relu(self.conv1(x))
        x2 = F.relu(self.conv2(x1))
        x3 = F.relu(self.conv3(x2))
        x4 = F.relu(self.conv4(x3))
        x5 = F.relu(self.conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.conv7(torch.cat([x1, x6], 1)))

    @staticmethod
    def apply_curves(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """LE_n(x) = LE_{n-1} + A_n * LE_{n-1} * (1 - LE_{n-1}) (paper eq. 2-3)."""
        for an in torch.split(a, 3, dim=1):
            x = x + an * x * (1 - x)
        return x

    def forward_with_curves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(enhanced, A) of the prepared input (:meth:`prepare`; the input is already prepared)."""
        a = self.curves(x)
        return self.apply_curves(x, a), a  # stays in [0, 1] for x in [0, 1], |a| <= 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_curves(self.prepare(x))[0].clamp(0, 1)


# -- zero-reference losses -------------------------------------------------------------------
def spatial_consistency_loss(enhanced: torch.Tensor, low: torch.Tensor, region: int = 4) -> torch.Tensor:
    """L_spa (eq. 4): keep |Y_i - Y_j| of region means like |I_i - I_j| for the 4 neighbours j of i.

    Y, I are channel means average-pooled over ``region`` x ``region``; borders
    are zero-padded, as in the official implementation's 3x3 difference kernels.
    """
    y = F.avg_pool2d(enhanced.mean(1, keepdim=True), region, ceil_mode=True)
    i = F.avg_pool2d(low.mean(1, keepdim=True), region, ceil_mode=True)
    yp, ip = F.pad(y, (1, 1, 1, 1)), F.pad(i, (1, 1, 1, 1))
    h, w = y.shape[-2:]
    total = y.new_zeros(())
    for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0)):
        ny = yp[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        ni = ip[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        total = total + ((y - ny).abs() - (i - ni).abs()).pow(2).mean()
    return total


def exposure_loss(enhanced: torch.Tensor, patch: int = 16, level: float = 0.6) -> torch.Tensor:
    """L_exp (eq. 5): mean over non-overlapping P x P patches of (mean intensity - E)^2."""
    y = F.avg_pool2d(enhanced.mean(1, keepdim=True), patch, ceil_mode=True)
    return (y - level).pow(2).mean()


def color_constancy_loss(enhanced: torch.Tensor) -> torch.Tensor:
    """L_col (eq. 6): sum over channel pairs of (mean_p - mean_q)^2 (grey-world)."""
    m = enhanced.mean(dim=(2, 3))
    r, g, b = m[:, 0], m[:, 1], m[:, 2]
    return ((r - g).pow(2) + (r - b).pow(2) + (g - b).pow(2)).mean()


def illumination_smoothness_loss(a: torch.Tensor) -> torch.Tensor:
    """L_tvA (eq. 7): squared horizontal and vertical gradients of the curve maps."""
    dh = (a[..., 1:, :] - a[..., :-1, :]).pow(2).mean() if a.shape[-2] > 1 else a.new_zeros(())
    dw = (a[..., :, 1:] - a[..., :, :-1]).pow(2).mean() if a.shape[-1] > 1 else a.new_zeros(())
    return dh + dw


@ENHANCERS.register("zerodce")
class ZeroDCE(LearnedEnhancer):
    """Zero-DCE (Guo et al. 2020): DCE-Net curve estimation trained by zero-reference losses."""

    name = "zerodce"
    paired = False

    def __init__(
        self,
        preset: str = "cpu",
        n_feat: int = 32,
        n_iter: int = 8,
        exposure_level: float = 0.6,
        exposure_patch: int = 8,
        spatial_region: int = 4,
        w_spa: float = 1.0,
        w_exp: float = 10.0,
        w_col: float = 5.0,
        w_tv: float = 200.0,
        input_gain: float | None = 0.5,
    ):
        if preset not in PRESETS:
            raise ConfigError(f"zerodce: unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
        super().__init__(
            preset=preset, n_feat=n_feat, n_iter=n_iter, exposure_level=exposure_level,
            exposure_patch=exposure_patch, spatial_region=spatial_region,
            w_spa=w_spa, w_exp=w_exp, w_col=w_col, w_tv=w_tv,
            input_gain=None if input_gain is None else float(input_gain),
        )

    def build_model(self) -> nn.Module:
        c = self.config
        return DCENet(int(c["n_feat"]), int(c["n_iter"]), c.get("input_gain"))

    def loss(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        low = self.model.prepare(low)  # type: ignore[operator]  # L_spa compares with the curves' input
        enhanced, a = self.model.forward_with_curves(low)  # type: ignore[operator]
        l_spa = spatial_consistency_loss(enhanced, low, int(c["spatial_region"]))
        l_exp = exposure_loss(enhanced, int(c["exposure_patch"]), float(c["exposure_level"]))
        l_col = color_constancy_loss(enhanced)
        l_tv = illumination_smoothness_loss(a)
        total = c["w_spa"] * l_spa + c["w_exp"] * l_exp + c["w_col"] * l_col + c["w_tv"] * l_tv
        parts = {"spa": l_spa.item(), "exp": l_exp.item(), "col": l_col.item(), "tv": l_tv.item()}
        return total, parts
