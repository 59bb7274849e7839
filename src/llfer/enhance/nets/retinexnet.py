"""RetinexNet (Wei et al., "Deep Retinex Decomposition for Low-Light
Enhancement", BMVC 2018), written from the paper; layer details follow the
official TensorFlow code (weichen582/RetinexNet).

Decom-Net: the image with its channel-wise max prepended (4 channels, as in the
official code) -> conv 9x9 (no activation) -> ``decom_layers`` (5) conv 3x3 +
ReLU -> conv 3x3 to 4 channels; R = sigmoid(channels 0-2), I = sigmoid(channel 3).

Enhance-Net (relight): [R, I] -> conv 3x3 -> three stride-2 conv 3x3 + ReLU
(encoder) -> three nearest-neighbour resizes to the skip's size, each followed by
conv 3x3 + ReLU and the skip added (decoder) -> the three decoder outputs resized
(nearest) to full size and concatenated (multi-scale concatenation) -> conv 1x1
-> conv 3x3 to the enhanced illumination I_hat (no activation).
Output S = R_low * I_hat, clamped to [0, 1].  The paper additionally denoises
R_low with BM3D before recombination; that step is skipped here.

Losses (paper eq. 1-3, weights of the paper and the official code):

* decomposition (phase "decom"):
  sum_ij lambda_ij |R_i * I_j - S_j|_1 with lambda_ii = 1, lambda_ij = 0.001
  (cross-reconstruction), + lambda_ir |R_low - R_high|_1 (lambda_ir = 0.01),
  + lambda_is (0.1) * structure-aware smoothness of I_low and I_high;
* enhancement (phase "relight"): |R_low * I_hat - S_high|_1 + 3 * smoothness of I_hat.

Structure-aware smoothness: mean(|grad I| * exp(-lambda_g * avgpool3(|grad R_gray|)))
over x and y, lambda_g = 10, R_gray the luma of R (0.2989, 0.587, 0.114).  The
gradients are forward differences (0 at the last row / column); the official
code's 2x2 'SAME' kernel gives the same differences shifted by one row.

Training (:meth:`RetinexNet.fit`): the first ``decom_share`` of the iterations
train the Decom-Net alone, the rest train the Enhance-Net with the Decom-Net
frozen, each phase through the generic loop of the base class (its cosine
schedule restarts at the phase change).

Parameters: "paper" (64 channels) 444,613 (Decom 207,748 + Enhance 236,865,
as in the official code); "cpu" (16 channels) in the tests.

Input and parametrisation (both presets, ``input_gain`` 0.5; None restores the
paper's): the image is scaled by one gain to a mean of 0.5 (capped: no pixel above 1)
(:func:`llfer.enhance.base.gain_normalise`) before the Decom-Net, so the low- and
normal-light images of a pair share one exposure and their reflectances can agree
(the paper's lambda_ir term) from the first step; the Decom-Net's outputs are
corrections to the logits of a flat-illumination decomposition (I0 = the image's
maximum, R0 = x / I0: R * I = x before training) and the Enhance-Net predicts a
correction to I_low (I_hat = I_low + g(R, I), its last convolution starting at 0),
so S = R_low * I_hat starts as that gain.  The paper's structure (Decom-Net,
multi-scale Enhance-Net, S = R * I_hat), its losses and weights are unchanged;
without this a run of a few hundred steps ended in flat grey squares (the
decomposition had not converged when the Enhance-Net started).  The "cpu" preset
only narrows the channels (16 instead of 64).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, LlferError
from ...registry import ENHANCERS
from ..base import LearnedEnhancer, gain_normalise

PRESETS = {"paper": {"channels": 64}, "cpu": {"channels": 16}}
PHASES = ("decom", "relight")


class DecomNet(nn.Module):
    def __init__(self, channels: int = 64, layers: int = 5, residual: bool = False, eps: float = 0.01):
        super().__init__()
        body: list[nn.Module] = [nn.Conv2d(4, channels, 9, padding=4)]
        for _ in range(layers):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        body.append(nn.Conv2d(channels, 4, 3, padding=1))
        self.body = nn.Sequential(*body)
        self.residual, self.eps = residual, eps
        if residual:  # the logits start at the max-channel decomposition
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image -> (reflectance R, N x 3, illumination I, N x 1), both in (0, 1).

        ``residual``: the network's outputs are added to the logits of a starting decomposition with a
        flat illumination, I0 = the image's maximum, R0 = x / I0 (both clamped to [eps, 1 - eps]), so that
        R * I = x (to 1 %) and the smoothness terms are 0 before any training; the Decom-Net learns the
        paper's losses' corrections to it.
        """
        imax = x.amax(1, keepdim=True)
        out = self.body(torch.cat([imax, x], 1))
        if self.residual:
            i0 = imax.amax(dim=(2, 3), keepdim=True).clamp(self.eps, 1 - self.eps).expand_as(imax)
            r0 = (x / i0).clamp(self.eps, 1 - self.eps)
            return torch.sigmoid(torch.logit(r0) + out[:, :3]), torch.sigmoid(torch.logit(i0) + out[:, 3:4])
        out = torch.sigmoid(out)
        return out[:, :3], out[:, 3:4]


class EnhanceNet(nn.Module):
    def __init__(self, channels: int = 64, residual: bool = False):
        super().__init__()
        c = channels
        self.residual = residual
        self.conv0 = nn.Conv2d(4, c, 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for _ in range(3))
        self.up = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(3))
        self.fuse = nn.Conv2d(3 * c, c, 1)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        if residual:  # I_hat = I + 0 at the start
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, r: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        enc = [self.conv0(torch.cat([r, i], 1))]
        for conv in self.down:
            enc.append(F.relu(conv(enc[-1])))
        h = enc[3]
        dec = []
        for conv, skip in zip(self.up, (enc[2], enc[1], enc[0])):
            h = F.relu(conv(F.interpolate(h, size=skip.shape[-2:], mode="nearest"))) + skip
            dec.append(h)
        size = enc[0].shape[-2:]
        gathered = torch.cat([F.interpolate(d, size=size, mode="nearest") for d in dec[:2]] + [dec[2]], 1)
        out = self.out(self.fuse(gathered))
        return i + out if self.residual else out


class RetinexNetModel(nn.Module):
    def __init__(self, channels: int = 64, decom_layers: int = 5, input_gain: float | None = None):
        super().__init__()
        self.input_gain = input_gain
        self.decom = DecomNet(channels, decom_layers, residual=bool(input_gain))
        self.relight = EnhanceNet(channels, residual=bool(input_gain))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The Decom-Net's input: x, gain-normalised when ``input_gain``."""
        return gain_normalise(x, self.input_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """S = R_low * I_hat (unclamped)."""
        r, i = self.decom(self.prepare(x))
        return r * self.relight(r, i)


def _grad(x: torch.Tensor, axis: str) -> torch.Tensor:
    """|forward difference| along x (width) or y (height), 0 at the last column / row."""
    if axis == "x":
        return F.pad((x[..., :, 1:] - x[..., :, :-1]).abs(), (0, 1, 0, 0))
    return F.pad((x[..., 1:, :] - x[..., :-1, :]).abs(), (0, 0, 0, 1))


def structure_smoothness(i: torch.Tensor, r: torch.Tensor, lambda_g: float = 10.0) -> torch.Tensor:
    """Structure-aware smoothness (paper eq. 3): |grad I| weighted by exp(-lambda_g |grad R|)."""
    gray = (r * r.new_tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    total = i.new_zeros(())
    for axis in ("x", "y"):
        g_r = F.avg_pool2d(_grad(gray, axis), 3, stride=1, padding=1, count_include_pad=False)
        total = total + (_grad(i, axis) * torch.exp(-lambda_g * g_r)).mean()
    return total


@ENHANCERS.register("retinexnet")
class RetinexNet(LearnedEnhancer):
    """RetinexNet (Wei et al. 2018): Decom-Net + Enhance-Net, two-phase training, S = R_low * I_hat."""

    name = "retinexnet"
    paired = True

    def __init__(
        self,
        preset: str = "cpu",
        channels: int | None = None,
        decom_layers: int = 5,
        decom_share: float = 0.5,
        lambda_cross: float = 0.001,
        lambda_ir: float = 0.01,
        lambda_is_decom: float = 0.1,
        lambda_is_relight: float = 3.0,
        lambda_g: float = 10.0,
        input_gain: float | None = 0.5,
    ):
        """``channels`` None: from ``preset`` ("paper" 64, "cpu" 16); ``decom_share``: fraction of fit iterations for phase 1."""
        if preset not in PRESETS:
            raise ConfigError(f"retinexnet: unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
        if not 0.0 <= decom_share <= 1.0:
            raise ConfigError(f"retinexnet: decom_share must be in [0, 1], got {decom_share}")
        channels = PRESETS[preset]["channels"] if channels is None else int(channels)
        super().__init__(
            preset=preset, channels=channels, decom_layers=decom_layers, decom_share=decom_share,
            lambda_cross=lambda_cross, lambda_ir=lambda_ir, lambda_is_decom=lambda_is_decom,
            lambda_is_relight=lambda_is_relight, lambda_g=lambda_g,
            input_gain=None if input_gain is None else float(input_gain),
        )
        self.phase = "decom"

    def build_model(self) -> nn.Module:
        return RetinexNetModel(int(self.config["channels"]), int(self.config["decom_layers"]), self.config.get("input_gain"))

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.model(low).clamp(0, 1)

    # -- losses ---------------------------------------------------------------------------------
    def decom_loss(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        low = self.model.prepare(low)  # type: ignore[operator]
        r, i = self.model.decom(torch.cat([low, high]))  # type: ignore[operator]
        r_lo, r_hi = r.chunk(2)
        i_lo, i_hi = i.chunk(2)
        rec = (r_lo * i_lo - low).abs().mean() + (r_hi * i_hi - high).abs().mean()
        cross = (r_hi * i_lo - low).abs().mean() + (r_lo * i_hi - high).abs().mean()
        equal_r = (r_lo - r_hi).abs().mean()
        smooth = structure_smoothness(i_lo, r_lo, c["lambda_g"]) + structure_smoothness(i_hi, r_hi, c["lambda_g"])
        total = rec + c["lambda_cross"] * cross + c["lambda_ir"] * equal_r + c["lambda_is_decom"] * smooth
        return total, {"recon": rec.item(), "cross": cross.item(), "equal_r": equal_r.item(), "smooth": smooth.item()}

    def relight_loss(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        with torch.no_grad():
            r, i = self.model.decom(self.model.prepare(low))  # type: ignore[operator]
        i_hat = self.model.relight(r, i)  # type: ignore[operator]
        relight = (r * i_hat - high).abs().mean()
        smooth = structure_smoothness(i_hat, r, c["lambda_g"])
        return relight + c["lambda_is_relight"] * smooth, {"relight": relight.item(), "smooth_hat": smooth.item()}

    def loss(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if self.phase == "decom":
            return self.decom_loss(low, high)
        if self.phase == "relight":
            return self.relight_loss(low, high)
        raise LlferError(f"retinexnet: unknown phase {self.phase!r}; allowed: {', '.join(PHASES)}")

    # -- two-phase training ------------------------------------------------------------------------
    def _train_only(self, part: str | None) -> None:
        for name in ("decom", "relight"):
            for p in getattr(self.model, name).parameters():
                p.requires_grad_(part is None or name == part)

    def fit(  # type: ignore[override]
        self, low: np.ndarray, high: np.ndarray, *, steps: int = 1000, seed: int = 0,
        val: tuple[np.ndarray, np.ndarray] | None = None, checkpoint: Any = None, resume: bool = False,
        **kwargs: Any,
    ) -> list[dict[str, float]]:
        """Phase "decom" for round(decom_share * steps) steps, then "relight" with Decom-Net frozen.

        Both phases run on the one engine (:meth:`LearnedEnhancer.fit`); only the relight phase is
        validated (PSNR of the whole network's output) and selects the best weights, since the output of
        an untrained Enhance-Net says nothing about the decomposition.  Other keyword arguments are those
        of :meth:`LearnedEnhancer.fit`.  History rows carry ``phase`` (0 decom, 1 relight) and a global
        ``step``; resuming is not offered for the two-phase schedule (a run starts over).
        """
        if resume:
            raise LlferError("retinexnet: --resume is not supported for its two-phase training; start over")
        n_decom = int(round(steps * float(self.config["decom_share"])))
        history: list[dict[str, float]] = []
        try:
            for k, (phase, n) in enumerate((("decom", n_decom), ("relight", steps - n_decom))):
                if n <= 0:
                    continue
                self.phase = phase
                self._train_only(phase)
                offset = n_decom if k else 0
                rows = super().fit(low, high, steps=n, seed=seed + k, val=val if phase == "relight" else None,
                                   **kwargs)
                history += [{**row, "step": row["step"] + offset, "phase": float(k)} for row in rows]
        finally:
            self._train_only(None)
            self.phase = "decom"
        return history
