"""Learned enhancers start as a (capped) global gain and learn beyond it (issue 11): the gain-normalised input,
the residual outputs, the grey-safe colour loss, and short trainings that beat the gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llfer.enhance.base import gain_normalise
from llfer.enhance.losses import color_space_loss, rgb_to_hsi, rgb_to_hsv
from llfer.metrics.quality import psnr
from llfer.registry import ENHANCERS

torch.set_num_threads(1)
LEARNED = ("mirnet", "retinexnet", "llenet", "zerodce")


def gray_faces(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth random gray images with edges (uint8 N x H x W), a stand-in for faces."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4, generator=g)
    img = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    img = img + 0.25 * (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float().repeat_interleave(size // 8, -1).repeat_interleave(size // 8, -2)
    img = (0.1 + 0.7 * img / img.amax(dim=(2, 3), keepdim=True)).clamp(0, 1)
    return (img[:, 0] * 255).round().to(torch.uint8).numpy()


def gamma_dark(high: np.ndarray, gamma: float = 2.5, alpha: float = 0.6) -> np.ndarray:
    """[ll-fer] eq. 14 style darkening alpha * I ** gamma: a global gain cannot undo it."""
    return np.floor(255 * alpha * (high / 255.0) ** gamma).astype(np.uint8)


def capped_gain(images: np.ndarray, target: float = 0.5) -> np.ndarray:
    """NumPy reference of gain_normalise on gray uint8 images: min(target / mean, 1 / max), rounded."""
    x = images.astype(np.float64) / 255
    g = np.minimum(target / x.mean(axis=(1, 2)), 1 / x.max(axis=(1, 2)))[:, None, None]
    return np.round(np.clip(x * g, 0, 1) * 255).astype(np.uint8)


def test_gain_normalise_sets_the_mean_caps_at_white_and_keeps_black():
    x = torch.rand(4, 3, 8, 8) * 0.1
    x[1, :, 0, 0] = 0.9  # a bright pixel: the mean gain would send it to ~8; capped at 1
    x[3] = 0
    y = gain_normalise(x, 0.5)
    assert torch.allclose(y[[0, 2]].amax(1).mean(dim=(1, 2)), torch.full((2,), 0.5), atol=1e-6)
    assert y[1].max().item() == pytest.approx(1.0) and y[1].amax(0).mean() < 0.5
    assert torch.equal(y[3], x[3])


@pytest.mark.parametrize("name", LEARNED)
def test_untrained_learned_enhancer_is_the_capped_gain(name):
    clean = gray_faces(6)
    dark = (clean * 0.1).astype(np.uint8)
    out = ENHANCERS.build(name, preset="cpu").enhance(dark)
    # float rounding: one level; RetinexNet's start R0 * I0 clamps both factors to [0.01, 0.99]: within 1 %
    tol = 3 if name == "retinexnet" else 1
    assert np.abs(out.astype(int) - capped_gain(dark)).max() <= tol
    raw = ENHANCERS.build(name, preset="cpu", input_gain=None).enhance(dark)
    assert psnr(raw, clean).mean() + 5 < psnr(out, clean).mean()


def test_color_space_loss_skips_hue_on_gray_targets():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 1, 8, 8, generator=g).expand(-1, 3, -1, -1).contiguous()
    x = (y + 1e-4 * torch.randn(2, 3, 8, 8, generator=g)).clamp(0, 1).requires_grad_(True)
    loss = color_space_loss(x, y)
    loss.backward()
    # without hue: the saturation and value / intensity terms only, and a bounded gradient
    hx, hy, ix, iy = rgb_to_hsv(x), rgb_to_hsv(y), rgb_to_hsi(x), rgb_to_hsi(y)
    expect = (hx - hy)[:, 1:].abs().sum(1).mean() / 3 + (ix - iy)[:, 1:].abs().sum(1).mean() / 3
    assert loss.item() == pytest.approx(expect.item(), rel=1e-5)
    assert torch.isfinite(x.grad).all()
    # the raw eq. 7 (hue compared everywhere) on the same pair: gradients of order 1 / eps
    x2 = x.detach().clone().requires_grad_(True)
    ((rgb_to_hsv(x2) - hy).abs().mean() + (rgb_to_hsi(x2) - iy).abs().mean()).backward()
    assert x2.grad.abs().max() > 10 * x.grad.abs().max(), (x2.grad.abs().max(), x.grad.abs().max())
    # a coloured target keeps its hue term
    yc = torch.rand(2, 3, 8, 8, generator=g)
    xc = torch.roll(yc, 1, dims=1)
    assert color_space_loss(xc, yc).item() > color_space_loss(xc, xc).item() + 0.01


# RetinexNet's margin is smaller: its S = R * I_hat with a smooth I_hat (eq. 3) inverts a gamma slowly
@pytest.mark.parametrize("name,steps,lr,margin", [("mirnet", 30, 3e-3, 1.0), ("retinexnet", 80, 2e-3, 0.3),
                                                  ("llenet", 20, 3e-3, 1.0)])
def test_short_training_beats_the_gain_on_gamma_darkened_faces(name, steps, lr, margin):
    high = gray_faces(64, seed=1)
    low = gamma_dark(high)
    test_high = gray_faces(16, seed=2)
    test_low = gamma_dark(test_high)
    enh = ENHANCERS.build(name, preset="cpu", **({"decom_share": 0.25} if name == "retinexnet" else {}))
    hist = enh.fit(low, high, steps=steps, batch_size=8 if name != "retinexnet" else 16, lr=lr, warmup_steps=5, progress=False,
                   val=(test_low, test_high), eval_every=steps // 4)
    gain = max(psnr(ENHANCERS.build("gain").enhance(test_low), test_high).mean(), psnr(capped_gain(test_low), test_high).mean())
    learned = psnr(enh.enhance(test_low), test_high).mean()
    assert learned > gain + margin, (name, learned, gain)
    rows = [r for r in hist if r.get("phase", 0) == hist[-1].get("phase", 0)]  # RetinexNet: its relight phase
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
