"""Full-reference image-quality scores, batched: PSNR and SSIM.

Conventions
-----------
Images are batches: N x H x W (grayscale) or N x C x H x W / N x H x W x C
(colour; see ``channels_last``), as uint8 or float NumPy arrays or torch
tensors, on the scale given by ``data_range`` (255 for uint8).  Every function
returns one score per image: a float64 NumPy array, or a float64 torch tensor
when an input is a tensor.

- :func:`psnr` and :func:`ssim` reproduce scikit-image's
  ``peak_signal_noise_ratio`` and ``structural_similarity`` with their default
  settings (7 x 7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03;
  colour: SSIM per channel, averaged) to better than 1e-4; they compute in
  float64.  Identical images have PSNR = +inf (as in scikit-image); average
  per-image PSNRs with :func:`mean_score`, which caps them (default 100 dB).

NIQE (no reference) is in :mod:`llfer.metrics.niqe`, the MATLAB-compatible
``imresize`` and ``rgb2ycbcr`` it needs in :mod:`llfer.metrics.matlab`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import LlferError

__all__ = ["psnr", "ssim", "mean_score"]


# ----------------------------------------------------------------------------- input handling
def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64)
    return torch.from_numpy(np.asarray(x).astype(np.float64, copy=False))


def _to_nchw(x: torch.Tensor, channels_last: bool | None) -> torch.Tensor:
    """N x H x W -> N x 1 x H x W; 4-D colour to N x C x H x W."""
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim != 4:
        raise LlferError(f"images must be N x H x W or N x C x H x W / N x H x W x C, got shape {tuple(x.shape)}")
    if channels_last is None:
        channels_last = x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)
    return x.permute(0, 3, 1, 2) if channels_last else x


def _pair(x: Any, y: Any, channels_last: bool | None) -> tuple[torch.Tensor, torch.Tensor, bool]:
    as_torch = isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor)
    tx, ty = _as_tensor(x), _as_tensor(y)
    if tx.shape != ty.shape:
        raise LlferError(f"image batches differ in shape: {tuple(tx.shape)} vs {tuple(ty.shape)}")
    return _to_nchw(tx, channels_last), _to_nchw(ty, channels_last), as_torch


def _out(v: torch.Tensor, as_torch: bool):
    return v if as_torch else v.numpy()


# ----------------------------------------------------------------------------- PSNR / SSIM
def psnr(x: Any, y: Any, data_range: float = 255.0, channels_last: bool | None = None):
    """Per-image PSNR in dB, 10 log10(data_range^2 / MSE) (MSE over all pixels and channels).

    Matches ``skimage.metrics.peak_signal_noise_ratio(y_i, x_i, data_range=...)``;
    identical images give +inf.
    """
    a, b, as_torch = _pair(x, y, channels_last)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    v = 10.0 * torch.log10(float(data_range) ** 2 / mse)  # MSE 0 -> +inf
    return _out(v, as_torch)


def ssim(
    x: Any,
    y: Any,
    data_range: float = 255.0,
    channels_last: bool | None = None,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
    chunk: int = 1024,
):
    """Per-image mean SSIM (scikit-image defaults: uniform window, sample covariance).

    Colour images: SSIM of each channel, averaged (skimage's ``channel_axis``).
    As in scikit-image, the mean is taken over the pixels whose whole window lies
    inside the image (a border of (win_size - 1) / 2 is left out), so the
    border handling of the filter does not matter.
    """
    a, b, as_torch = _pair(x, y, channels_last)
    n, c, h, w = a.shape
    if win_size % 2 != 1 or win_size > min(h, w):
        raise LlferError(f"ssim: win_size must be odd and <= the image size, got {win_size} for {h}x{w}")
    np_ = win_size * win_size
    cov_norm = np_ / (np_ - 1.0)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    out = torch.empty(n, dtype=torch.float64)
    r = win_size
    inv = 1.0 / (r * r)

    # window sums as two matrix products with 0/1 band matrices (one BLAS call each);
    # the result comes out transposed (W' x H'), the same for all five maps, so the mean is unchanged
    band_w = (np.arange(w)[:, None] - np.arange(w - r + 1)[None, :])
    band_w = ((band_w >= 0) & (band_w < r)).astype(np.float64)
    band_h = (np.arange(h)[:, None] - np.arange(h - r + 1)[None, :])
    band_h = ((band_h >= 0) & (band_h < r)).astype(np.float64)

    def box(t: np.ndarray) -> np.ndarray:  # mean over every full r x r window (valid region)
        m_ = t.shape[0]
        u = (t.reshape(-1, w) @ band_w).reshape(m_, h, -1).transpose(0, 2, 1)
        return (np.ascontiguousarray(u).reshape(-1, h) @ band_h).reshape(m_, w - r + 1, h - r + 1) * inv

    for i in range(0, n, chunk):
        xa = a[i : i + chunk].reshape(-1, h, w).numpy()
        ya = b[i : i + chunk].reshape(-1, h, w).numpy()
        ux, uy = box(xa), box(ya)
        uxx, uyy, uxy = box(xa * xa), box(ya * ya), box(xa * ya)
        vx = cov_norm * (uxx - ux * ux)
        vy = cov_norm * (uyy - uy * uy)
        vxy = cov_norm * (uxy - ux * uy)
        s_ = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out[i : i + chunk] = torch.from_numpy(s_.reshape(-1, c, s_.shape[-2] * s_.shape[-1]).mean(axis=2).mean(axis=1))
    return _out(out, as_torch)


def mean_score(values: Any, cap: float | None = 100.0) -> float:
    """Mean of per-image scores with +inf (identical images' PSNR) capped at ``cap`` dB; NaNs are ignored."""
    v = np.asarray(values.numpy() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if cap is not None:
        v = np.minimum(v, cap)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")
