"""NIQE, the no-reference naturalness score (Mittal et al. 2013), batched.

It reproduces the MATLAB NIQE as
re-implemented by BasicSR's ``calculate_niqe`` (96 x 96 blocks, two scales,
MATLAB pristine model shipped in ``data/niqe_pris_params.npz``), vectorised
over images of equal size.  NIQE is numerically touchy: its second-scale
normalisation loses most digits to float32 cancellation in smooth regions
and its shape parameter is picked from a grid, so a rounding difference can
move a score by 1e-2.  We therefore follow the reference's float32 steps
where they decide the result (bit-identical ``imresize`` and local
normalisation, exact float32 r-hat near grid ties) and use float64
elsewhere; agreement with BasicSR 1.4.2 is ~2e-6 (benchmarks/bench_niqe.py).

Images are batches as in :mod:`llfer.metrics.quality`: N x H x W gray or
N x H x W x 3 / N x 3 x H x W RGB on the 0..255 scale; one float64 score per image.
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
from .matlab import matlab_resize, rgb_to_y

__all__ = ["niqe"]

DATA_DIR = Path(__file__).with_name("data")


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
