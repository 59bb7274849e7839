"""Image-quality scores, batched: PSNR and SSIM (full reference), NIQE (no reference).

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
- :func:`niqe` reproduces the MATLAB NIQE (Mittal et al. 2013) as
  re-implemented by BasicSR's ``calculate_niqe`` (96 x 96 blocks, two scales,
  MATLAB pristine model shipped in ``data/niqe_pris_params.npz``), vectorised
  over images of equal size.  NIQE is numerically touchy: its second-scale
  normalisation loses most digits to float32 cancellation in smooth regions
  and its shape parameter is picked from a grid, so a rounding difference can
  move a score by 1e-2.  We therefore follow the reference's float32 steps
  where they decide the result (bit-identical ``imresize`` and local
  normalisation, exact float32 r-hat near grid ties) and use float64
  elsewhere; agreement with BasicSR 1.4.2 is ~2e-6 (benchmarks/bench_niqe.py).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LlferError

__all__ = ["psnr", "ssim", "niqe", "mean_score", "matlab_resize", "rgb_to_y"]

DATA_DIR = Path(__file__).with_name("data")


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


# ----------------------------------------------------------------------------- MATLAB-like helpers
def rgb_to_y(images: np.ndarray) -> np.ndarray:
    """RGB (N x H x W x 3, 0..255) -> Y of MATLAB ``rgb2ycbcr`` (BT.601, 16..235), float32, not rounded.

    Same float32 arithmetic as BasicSR's ``to_y_channel`` so that rounding the
    result agrees with it.
    """
    x = np.asarray(images).astype(np.float32)[..., ::-1] / np.float32(255.0)  # BGR, BasicSR's order of terms
    y = np.dot(x, [24.966, 128.553, 65.481]) + 16.0
    return (y / 255.0).astype(np.float32) * np.float32(255.0)


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's bicubic kernel (a = -0.5)."""
    ax = torch.abs(x)
    ax2 = ax**2
    ax3 = ax**3
    near = (ax <= 1).type_as(ax)
    far = ((ax > 1) & (ax <= 2)).type_as(ax)
    return (1.5 * ax3 - 2.5 * ax2 + 1) * near + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * far


@lru_cache(maxsize=64)
def _resize_weights(n_in: int, n_out: int, scale: float, antialias: bool) -> tuple[torch.Tensor, list[int], int, int]:
    """Bicubic weights of MATLAB ``imresize`` along one axis, in float32.

    Returns (weights n_out x k, first input index of each output row in the
    padded axis, padding before, padding after); the axis is padded by
    half-sample symmetric reflection ('symmetric': -1 -> 0, n -> n - 1).
    MATLAB's recipe: output pixel x (1-based) maps to u = x / scale + (1 - 1/scale) / 2;
    its taps are floor(u - width/2) + 0..ceil(width)+1, weighted by the cubic
    kernel (stretched by 1/scale when shrinking with anti-aliasing) and
    normalised to sum 1; an all-zero first or last tap column is dropped.
    """
    width = 4.0
    aa = scale < 1 and antialias
    if aa:
        width = width / scale
    x = torch.linspace(1, n_out, n_out)
    u = x / scale + 0.5 * (1 - 1 / scale)
    first = torch.floor(u - width / 2)
    p = math.ceil(width) + 2
    idx = first.view(n_out, 1) + torch.linspace(0, p - 1, p).view(1, p)
    d = u.view(n_out, 1) - idx
    w = scale * _cubic(d * scale) if aa else _cubic(d)
    w = w / torch.sum(w, 1).view(n_out, 1)
    zeros = torch.sum(w == 0, 0)
    if zeros[0] != 0:
        idx, w = idx[:, 1:], w[:, 1:]
    if zeros[-1] != 0:
        idx, w = idx[:, :-1], w[:, :-1]
    before = int(-idx.min().item() + 1)
    after = max(int(idx.max().item() - n_in), 0)
    starts = [int(v) - 1 + before for v in idx[:, 0].tolist()]
    return w.contiguous(), starts, before, after


def _sym_pad(x: np.ndarray, axis: int, before: int, after: int) -> torch.Tensor:
    """Half-sample symmetric padding along ``axis``, into a new (64-byte aligned) torch buffer.

    Torch's allocator alignment matters: MKL picks its summation order by the
    alignment of the data, and bit-identity with BasicSR needs the same one.
    """
    n = x.shape[axis]
    if before > n or after > n:
        raise LlferError(f"matlab_resize: an axis of {n} pixels is too short for this scale")
    idx = [slice(None)] * x.ndim
    parts = []
    if before:
        idx[axis] = slice(before - 1, None, -1) if before < n else slice(None, None, -1)
        parts.append(x[tuple(idx)])
    parts.append(x)
    if after:
        idx[axis] = slice(n - 1, n - 1 - after, -1) if after < n else slice(None, None, -1)
        parts.append(x[tuple(idx)])
    shape = list(x.shape)
    shape[axis] += before + after
    out = torch.empty(shape, dtype=torch.float32)
    np.concatenate(parts, axis=axis, out=out.numpy())
    return out


@torch.no_grad()
def matlab_resize(images: Any, scale: float, antialias: bool = True) -> np.ndarray:
    """Bicubic resize like MATLAB ``imresize(I, scale)`` of float N x H x W -> float32 (no rounding/clipping).

    Separable: rows, then columns, each output a weighted sum of <= k inputs.
    The sums are done with the same float32 BLAS calls (one torch ``mv`` per
    output row/column, over all images at once, on the same memory layouts)
    as BasicSR's ``imresize``, so that on the same PyTorch build the result is
    bit-identical to it: NIQE's normalisation of its second scale amplifies
    float32 rounding differences (see :func:`_normalise`).
    """
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    x = x.astype(np.float32, copy=False)
    if x.ndim != 3:
        raise LlferError(f"matlab_resize: expected N x H x W, got shape {x.shape}")
    n, h, w = x.shape
    oh = math.ceil(h * scale)
    if n > 1 and (w % 16 or oh % 16):
        # MKL's kernels treat the ends of rows/columns that are not multiples of
        # its vector/row blocks differently: batch only where every image sees
        # the same blocking as it would alone (e.g. 48 -> 192, 192 -> 96).
        return np.stack([_resize_batch(x[i : i + 1], scale, antialias)[0] for i in range(n)])
    return _resize_batch(x, scale, antialias)


def _resize_batch(x: np.ndarray, scale: float, antialias: bool) -> np.ndarray:
    n, h, w = x.shape
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny BLAS calls: threads only add overhead
    try:
        # rows: padded input laid out H_aug x (N*W); output row i = taps^T . weights
        wh, starts, before, after = _resize_weights(h, oh, float(scale), antialias)
        aug = _sym_pad(x.transpose(1, 0, 2), 0, before, after).reshape(-1, n * w)
        k = wh.shape[1]
        # (a fresh output per call, as BasicSR: MKL's order also depends on the output's alignment)
        rows = torch.stack([aug[s : s + k].transpose(0, 1).mv(wh[i]) for i, s in enumerate(starts)])
        # columns: padded rows laid out (N*oh) x W_aug; output column j = taps . weights
        ww, starts, before, after = _resize_weights(w, ow, float(scale), antialias)
        r = rows.numpy().reshape(oh, n, w).transpose(1, 0, 2)
        aug = _sym_pad(r, 2, before, after).reshape(n * oh, -1)
        k = ww.shape[1]
        cols = torch.stack([aug[:, s : s + k].mv(ww[j]) for j, s in enumerate(starts)])
    finally:
        torch.set_num_threads(threads)
    return np.ascontiguousarray(cols.numpy().reshape(ow, n, oh).transpose(1, 2, 0))


# ----------------------------------------------------------------------------- NIQE
_GAM = np.arange(0.2, 10.001, 0.001)  # the AGGD shape grid of the MATLAB code (9801 values)


@lru_cache(maxsize=1)
def _aggd_tables() -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import gamma as G

    r = G(2 / _GAM) ** 2 / (G(1 / _GAM) * G(3 / _GAM))  # strictly increasing in the shape
    return _GAM, r


@lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = DATA_DIR / "niqe_pris_params.npz"
    if not path.exists():
        raise LlferError(f"NIQE pristine model {path} is missing (package data not installed?)")
    d = np.load(path)
    win = d["gaussian_window"]
    g = win.sum(axis=1)
    g = g / g.sum()
    if np.abs(np.outer(g, g) - win).max() > 1e-12:  # the MATLAB window is a (separable) Gaussian
        raise LlferError(f"{path}: gaussian_window is not separable")
    return d["mu_pris_param"].reshape(-1), d["cov_pris_param"], g


def _gamma_ratio(a: np.ndarray, p: float, q: float) -> np.ndarray:
    """Gamma(p / a) / Gamma(q / a) for positive a (through log-gamma: no overflow)."""
    from scipy.special import gammaln

    return np.exp(gammaln(p / a) - gammaln(q / a))


def _aggd(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit an asymmetric generalised Gaussian to each row of ``b`` (... x P): (alpha, beta_l, beta_r).

    Moment matching as in the MATLAB NIQE code: left/right deviations from the
    negative/positive values, r-hat = mean(|b|)^2 / mean(b^2) normalised by the
    asymmetry, and the shape alpha = the grid value (0.2:0.001:10) whose
    r(alpha) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) is nearest (first on
    ties, like argmin; r is increasing, so a binary search suffices).  A row
    lacking negative or positive values gets NaN betas and, like the
    reference's argmin over NaNs, the first grid shape 0.2.
    """
    gam, rg = _aggd_tables()
    p = b.shape[-1]
    neg = np.minimum(b, 0)
    f8 = np.float64
    tot = np.einsum("...i,...i->...", b, b, dtype=f8)  # sums in float64 whatever b's dtype
    lsq = np.einsum("...i,...i->...", neg, neg, dtype=f8)
    rsq = tot - lsq
    nneg = np.count_nonzero(b < 0, axis=-1)
    npos = np.count_nonzero(b > 0, axis=-1)
    abs_mean = (b.sum(axis=-1, dtype=f8) - 2.0 * neg.sum(axis=-1, dtype=f8)) / p
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(lsq / nneg)  # 0/0 -> NaN, like the mean of an empty selection
        right = np.sqrt(rsq / npos)
        ghat = left / right
        rhat = abs_mean**2 / (tot / p)
        rn = rhat * (ghat**3 + 1) * (ghat + 1) / (ghat**2 + 1) ** 2
    hi = np.clip(np.searchsorted(rg, rn), 1, len(rg) - 1)
    lo = hi - 1
    pick = np.where((rg[lo] - rn) ** 2 <= (rg[hi] - rn) ** 2, lo, hi)
    pick = np.where(np.isnan(rn), 0, pick)
    if b.dtype == np.float32:
        # The reference computes r-hat in float32 (numpy's pairwise sums), which is
        # off by up to ~5e-7 relative; where that could move r-hat across the
        # midpoint between two grid values (a different shape, and NIQE changes by
        # up to ~1e-2), redo those rows exactly as the reference does.
        near = np.abs(rn - 0.5 * (rg[lo] + rg[hi])) <= _TIE_TOL * np.abs(rn)
        if near.any():
            flat_b = b.reshape(-1, p)
            flat_pick = pick.reshape(-1)
            for j in np.flatnonzero(near.reshape(-1)):
                flat_pick[j] = np.argmin((rg - _rhatnorm_f32(flat_b[j])) ** 2)
            pick = flat_pick.reshape(pick.shape)
    alpha = gam[pick]
    k = np.sqrt(_gamma_ratio(alpha, 1.0, 3.0))
    return alpha, left * k, right * k


_TIE_TOL = 5e-6  # relative; 10x the largest float32-vs-float64 r-hat difference seen on FER faces


def _rhatnorm_f32(b: np.ndarray) -> np.float32:
    """Normalised r-hat of one float32 row with the reference's float32 arithmetic (numpy means)."""
    left = np.sqrt(np.mean(b[b < 0] ** 2))
    right = np.sqrt(np.mean(b[b > 0] ** 2))
    g = left / right
    r = np.mean(np.abs(b)) ** 2 / np.mean(b**2)
    return (r * (g**3 + 1) * (g + 1)) / ((g**2 + 1) ** 2)


_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """18 NIQE features of each block: ... x bh x bw -> ... x 18."""
    feats = []
    a, bl, br = _aggd(blocks.reshape(*blocks.shape[:-2], -1))
    feats += [a, (bl + br) / 2]
    for s in _SHIFTS:
        prod = np.roll(blocks, shift=s, axis=(-2, -1))  # circular, within the block (as the reference)
        prod *= blocks
        a, bl, br = _aggd(prod.reshape(*blocks.shape[:-2], -1))
        mean = (br - bl) * _gamma_ratio(a, 2.0, 1.0)
        feats += [a, mean, bl, br]
    return np.stack(feats, axis=-1)


def _normalise(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(I - mu) / (sigma + 1), local Gaussian mean/deviation with edge-replicated borders; float32 N x H x W.

    Arithmetic as in the reference (scipy ``convolve`` of float32 images: sums
    in float64, results stored as float32; the rest in float32), because
    sigma = sqrt(|E[I^2] - mu^2|) loses most of its digits to cancellation in
    smooth regions and NIQE's shape estimates are sensitive to it.
    """
    from scipy.ndimage import correlate1d

    def blur(t: np.ndarray) -> np.ndarray:
        t = correlate1d(t, g, axis=2, mode="nearest", output=np.float64)  # float64 from here on
        return correlate1d(t, g, axis=1, mode="nearest", output=t).astype(np.float32)

    img = img.astype(np.float32, copy=False)
    mu = blur(img)
    sigma = np.sqrt(np.abs(blur(img * img) - mu * mu))
    return (img - mu) / (sigma + np.float32(1.0))


def _blocks(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """N x (nh*bh) x (nw*bw) -> N x (nh*nw) x bh x bw (contiguous)."""
    n, h, w = img.shape
    nh, nw = h // bh, w // bw
    b = img[:, : nh * bh, : nw * bw].reshape(n, nh, bh, nw, bw).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(b).reshape(n, nh * nw, bh, bw)


def _niqe_batch(y: np.ndarray, block: int) -> np.ndarray:
    """NIQE of rounded Y images N x H x W (float32, 0..255)."""
    mu_p, cov_p, g = _pristine()
    n, h, w = y.shape
    nh, nw = h // block, w // block
    img = y[:, : nh * block, : nw * block]
    feats = []
    for scale in (1, 2):
        z = _normalise(img, g)
        feats.append(_block_features(_blocks(z, block // scale, block // scale)))
        if scale == 1:
            img = matlab_resize(img / np.float32(255.0), 0.5, antialias=True) * np.float32(255.0)
    f = np.concatenate(feats, axis=-1)  # N x B x 36
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu_d = np.nanmean(f, axis=1)  # nanmean over blocks, as the reference
    valid = ~np.isnan(f).any(axis=2)  # covariance over the blocks without any NaN
    cnt = valid.sum(axis=1)
    fz = np.where(valid[..., None], f, 0.0)
    m = fz.sum(axis=1) / np.maximum(cnt, 1)[:, None]
    dz = np.where(valid[..., None], f - m[:, None, :], 0.0)
    cov_d = np.einsum("nbi,nbj->nij", dz, dz) / (cnt - 1).clip(min=1)[:, None, None]
    cov_d[cnt < 2] = np.nan
    inv = _pinv_nan((cov_p[None] + cov_d) / 2)
    diff = mu_p[None, :] - mu_d
    q = np.einsum("ni,nij,nj->n", diff, inv, diff)
    with np.errstate(invalid="ignore"):
        return np.sqrt(q)


def _pinv_nan(m: np.ndarray) -> np.ndarray:
    ok = np.isfinite(m).all(axis=(1, 2))
    if ok.all():
        return np.linalg.pinv(m)
    out = np.full_like(m, np.nan)
    if ok.any():
        out[ok] = np.linalg.pinv(m[ok])
    return out


def niqe(
    images: Any,
    upsample: int | float | None = None,
    block_size: int = 96,
    channels_last: bool | None = None,
    chunk: int = 32,
):
    """Per-image NIQE (lower is better), MATLAB-compatible (BasicSR ``calculate_niqe``).

    ``images``: N x H x W gray or colour N x H x W x 3 / N x 3 x H x W RGB, 0..255
    (uint8 or float).  Colour is converted to Y of MATLAB ``rgb2ycbcr``; gray is
    used as it is.  Images need at least two 96 x 96 blocks: faces smaller than
    192 px are first enlarged by ``upsample`` with MATLAB-style bicubic
    interpolation (``None``: the smallest integer factor that makes both sides
    >= 2 * block_size, e.g. 4 for 48 x 48 faces; 1: never).  The image is then
    clipped to 0..255 and rounded (MATLAB keeps uint8; BasicSR rounds), cropped
    to whole blocks, and scored at two scales (the second a MATLAB
    ``imresize(., 0.5)`` with anti-aliasing) against the pristine model of the
    official MATLAB release.  Agrees with BasicSR to ~1e-6 (see the module
    notes).  Returns float64 scores (NaN where every block is degenerate, e.g.
    a constant image).
    """
    as_torch = isinstance(images, torch.Tensor)
    x = images.detach().cpu().numpy() if as_torch else np.asarray(images)
    if x.ndim == 4:
        if channels_last is None:
            channels_last = x.shape[-1] == 3 and x.shape[1] != 3
        if not channels_last:
            x = np.moveaxis(x, 1, -1)
        if x.shape[-1] != 3:
            raise LlferError(f"niqe: colour images must have 3 channels, got shape {images.shape}")
        y = rgb_to_y(x)
    elif x.ndim == 3:
        y = x.astype(np.float32)
    else:
        raise LlferError(f"niqe: images must be N x H x W or N x H x W x 3, got shape {x.shape}")
    n, h, w = y.shape
    if upsample is None:
        upsample = max(1, math.ceil(2 * block_size / min(h, w))) if min(h, w) else 1
    upsample = float(upsample)
    if upsample <= 0:
        raise LlferError(f"niqe: upsample must be > 0, got {upsample}")
    oh, ow = (math.ceil(h * upsample), math.ceil(w * upsample)) if upsample != 1 else (h, w)
    if (oh // block_size) * (ow // block_size) < 2:
        raise LlferError(
            f"niqe: a {h}x{w} image (x{upsample:g} -> {oh}x{ow}) has fewer than two {block_size}x{block_size} blocks; "
            f"raise the upsampling factor"
        )
    out = np.empty(n, dtype=np.float64)
    for i in range(0, n, chunk):
        part = y[i : i + chunk]
        if upsample != 1:
            part = matlab_resize(part / np.float32(255.0), upsample) * np.float32(255.0)
            part = np.clip(part, 0, 255)
        out[i : i + chunk] = _niqe_batch(np.round(part), block_size)  # round half to even, like the reference
    return torch.from_numpy(out) if as_torch else out
