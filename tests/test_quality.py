"""Full-reference quality metrics: PSNR / SSIM parity with scikit-image (NIQE: tests/test_niqe.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llfer.errors import LlferError
from llfer.metrics import quality as Q


def noisy_pair(shape, seed=0, amp=30):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-amp, amp + 1, shape), 0, 255).astype(np.uint8)
    return x, y


# ----------------------------------------------------------------------------- PSNR / SSIM
def test_psnr_ssim_match_skimage_gray():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x, y = noisy_pair((4, 48, 40))
    ref_p = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x, y)]
    ref_s = [structural_similarity(a, b, data_range=255) for a, b in zip(x, y)]
    np.testing.assert_allclose(Q.psnr(x, y), ref_p, atol=1e-4)
    np.testing.assert_allclose(Q.ssim(x, y), ref_s, atol=1e-4)
    # float input on [0, 1]
    xf, yf = x / 255.0, y / 255.0
    np.testing.assert_allclose(Q.ssim(xf, yf, data_range=1.0), ref_s, atol=1e-4)
    np.testing.assert_allclose(Q.psnr(xf, yf, data_range=1.0), ref_p, atol=1e-4)


def test_psnr_ssim_match_skimage_colour_both_layouts():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x, y = noisy_pair((3, 40, 44, 3), seed=1)
    ref_s = [structural_similarity(a, b, data_range=255, channel_axis=-1) for a, b in zip(x, y)]
    ref_p = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x, y)]
    np.testing.assert_allclose(Q.ssim(x, y), ref_s, atol=1e-4)
    np.testing.assert_allclose(Q.psnr(x, y), ref_p, atol=1e-4)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)
    ty = torch.from_numpy(y).permute(0, 3, 1, 2)
    s = Q.ssim(tx, ty)
    assert isinstance(s, torch.Tensor) and s.dtype == torch.float64
    np.testing.assert_allclose(s.numpy(), ref_s, atol=1e-4)
    np.testing.assert_allclose(Q.ssim(x, y, channels_last=True), ref_s, atol=1e-4)


def test_identical_images_and_mean_score():
    x, y = noisy_pair((3, 16, 16))
    p = Q.psnr(x, x)
    assert np.isinf(p).all()
    np.testing.assert_allclose(Q.ssim(x, x), 1.0)
    mixed = Q.psnr(np.concatenate([x, x]), np.concatenate([x, y]))
    assert Q.mean_score(mixed) == pytest.approx(np.mean(np.r_[[100.0] * 3, mixed[3:]]))
    assert np.isfinite(Q.mean_score(mixed, cap=60))
    assert np.isnan(Q.mean_score([]))


def test_psnr_ssim_errors():
    x, y = noisy_pair((2, 16, 16))
    with pytest.raises(LlferError):
        Q.psnr(x, y[:, :8])
    with pytest.raises(LlferError):
        Q.ssim(x[:, :5, :5], y[:, :5, :5])  # smaller than the 7 x 7 window
