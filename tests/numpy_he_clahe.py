"""NumPy re-implementations of OpenCV's ``equalizeHist`` and CLAHE (gray uint8 N x H x W, batched).

These were llfer's own HE / CLAHE before the enhancers called OpenCV; they
stay as an independent reference: tests/test_classical.py checks the OpenCV
enhancers against them bit for bit, and benchmarks/bench_classical.py times
both.  Not imported by the package.
"""

from __future__ import annotations

import numpy as np


def histograms(v: np.ndarray) -> np.ndarray:
    """Per-image 256-bin histograms of uint8 N x H x W -> int64 N x 256 (one bincount)."""
    n = v.shape[0]
    flat = v.reshape(n, -1).astype(np.intp) + (np.arange(n, dtype=np.intp) * 256)[:, None]
    return np.bincount(flat.ravel(), minlength=256 * n).reshape(n, 256)


def he_luts(hist: np.ndarray) -> np.ndarray:
    """Equalisation look-up tables (N x 256 float, 0..255 integers) from N x 256 histograms.

    ``v -> round(255 * (cdf(v) - cdf_min) / (n_pixels - cdf_min))``; a
    single-level image keeps its values.  The product is taken in float32 as
    OpenCV does (``(cdf - cdf_min) * float32(255 / (n - cdf_min))``): in float64
    an exact .5 tie rounds to even where OpenCV rounds up (1 of the 7,178
    FER2013 test faces darkened x0.1, 78 pixels one level apart).
    """
    cdf = np.cumsum(hist, axis=1, dtype=np.int64)
    total = cdf[:, -1:]
    # first non-zero cdf value = count of the lowest level present
    cdf_min = np.take_along_axis(cdf, (hist > 0).argmax(axis=1)[:, None], axis=1)
    denom = total - cdf_min
    scale = np.float32(255.0) / np.maximum(denom, 1).astype(np.float32)
    lut = np.rint((cdf - cdf_min).astype(np.float32) * scale)
    lut = np.clip(lut, 0, 255)
    const = (denom == 0)[:, 0]
    if const.any():  # single-level image: leave it as it is
        lut[const] = np.arange(256)
    return lut


def equalize(v: np.ndarray) -> np.ndarray:
    """Histogram equalisation of gray uint8 N x H x W (all images at once)."""
    n = v.shape[0]
    luts = he_luts(histograms(v))
    flat = v.reshape(n, -1).astype(np.intp) + (np.arange(n, dtype=np.intp) * 256)[:, None]
    return luts.reshape(-1)[flat].reshape(v.shape).astype(np.uint8)


def clahe(v: np.ndarray, clip_limit: float = 2.0, tiles: tuple[int, int] = (8, 8)) -> np.ndarray:
    """CLAHE of gray uint8 n x H x W with ``tiles`` = (rows, cols) -> uint8, in OpenCV's float32 arithmetic."""
    n, h, w = v.shape
    ty, tx = tiles
    # OpenCV pads (bottom/right, BORDER_REFLECT_101) only when a side is not a multiple of its
    # grid, and then pads BOTH sides by ``tiles - size % tiles``: a side that divides gains a whole
    # tile (llfer's code before OpenCV padded per side and so differed on e.g. a 5 x 4 grid at 48 px)
    ph, pw = (ty - h % ty, tx - w % tx) if (h % ty or w % tx) else (0, 0)
    src = np.pad(v, ((0, 0), (0, ph), (0, pw)), mode="reflect") if (ph or pw) else v
    th, tw = src.shape[1] // ty, src.shape[2] // tx
    area = th * tw
    # per-tile histograms: n x ty x tx x 256
    tl = src.reshape(n, ty, th, tx, tw).transpose(0, 1, 3, 2, 4).reshape(n * ty * tx, area)
    hist = histograms(tl)
    if clip_limit > 0:
        limit = max(int(clip_limit * area / 256), 1)
        clipped = np.maximum(hist - limit, 0).sum(axis=1)
        hist = np.minimum(hist, limit)
        batch, residual = clipped // 256, clipped % 256
        hist += batch[:, None]
        # remainder: +1 on bins 0, step, 2*step, ... (``residual`` of them)
        step = np.maximum(256 // np.maximum(residual, 1), 1)
        idx = np.arange(256)[None, :]
        hist += ((idx % step[:, None] == 0) & (idx // step[:, None] < residual[:, None])).astype(hist.dtype)
    lut_scale = np.float32(255.0 / area)
    luts = np.rint(np.cumsum(hist, axis=1).astype(np.float32) * lut_scale)
    luts = np.clip(luts, 0, 255).astype(np.float32).reshape(n, ty, tx, 256)
    # bilinear interpolation between tile centres (OpenCV's float32 arithmetic)
    yf = np.arange(h, dtype=np.float32) * np.float32(1.0 / th) - np.float32(0.5)
    xf = np.arange(w, dtype=np.float32) * np.float32(1.0 / tw) - np.float32(0.5)
    y1 = np.floor(yf).astype(np.intp)
    x1 = np.floor(xf).astype(np.intp)
    ya = (yf - y1).astype(np.float32)[None, :, None]
    xa = (xf - x1).astype(np.float32)[None, None, :]
    y2 = np.minimum(y1 + 1, ty - 1)
    x2 = np.minimum(x1 + 1, tx - 1)
    y1 = np.maximum(y1, 0)
    x1 = np.maximum(x1, 0)
    base = (np.arange(n, dtype=np.intp) * (ty * tx * 256))[:, None, None] + v.astype(np.intp)
    lf = luts.reshape(-1)

    def at(yy, xx):
        return lf[base + ((yy[:, None] * tx + xx[None, :]) * 256)[None]]

    res = (at(y1, x1) * (1 - xa) + at(y1, x2) * xa) * (1 - ya) + (at(y2, x1) * (1 - xa) + at(y2, x2) * xa) * ya
    return np.clip(np.rint(res), 0, 255).astype(np.uint8)
