"""Automated multi-scale Retinex with colour restoration (MSRCR)."""

from __future__ import annotations

import numpy as np

from ...errors import LlferError
from ...registry import ENHANCERS
from ..base import Enhancer
from .common import check_images


_BLUR_CACHE: dict[tuple[int, float], np.ndarray] = {}


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """n x n matrix of a 1-D Gaussian blur (scipy ``gaussian_filter1d``, mode 'mirror', truncate 4).

    'mirror' (d c b | a b c d | c b a) is OpenCV's default BORDER_REFLECT_101,
    which the widely used Python MSRCR code gets from ``cv2.GaussianBlur``.
    Building the matrix once per (size, sigma) turns each blur into two small
    matrix products however large sigma is.
    """
    key = (n, float(sigma))
    if key not in _BLUR_CACHE:
        from scipy.ndimage import gaussian_filter1d

        eye = np.eye(n, dtype=np.float64)
        # column j of the blurred identity = response to a unit impulse at j
        _BLUR_CACHE[key] = gaussian_filter1d(eye, float(sigma), axis=0, mode="mirror", truncate=4.0)
    return _BLUR_CACHE[key]


def _gauss_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Blur float N x H x W x C with a 2-D Gaussian (separable, via matrices)."""
    bh = _blur_matrix(x.shape[1], sigma).astype(x.dtype)
    bw = _blur_matrix(x.shape[2], sigma).astype(x.dtype)
    y = np.einsum("ij,njwc->niwc", bh, x, optimize=True)
    return np.einsum("kw,niwc->nikc", bw, y, optimize=True)


@ENHANCERS.register("retinex")
class AutomatedMSRCR(Enhancer):
    """Automated multi-scale Retinex with colour restoration (Parthasarathy & Sankaran, NCC 2012).

    Per channel i of I + 1 (the +1 avoids log 0):

    - MSR_i = mean over s in ``scales`` of [log I_i - log(G_s * I_i)], G_s a Gaussian
      of standard deviation s (pixels), borders mirrored (OpenCV's default);
    - colour restoration C_i = beta * (log(alpha * I_i) - log(sum_j I_j)),
      MSRCR_i = C_i * MSR_i (alpha = 125, beta = 46);
    - automated clipping: histogram of MSRCR_i per image and channel with bins of
      ``bin_width`` standard deviations of MSRCR_i; walking outwards from the peak
      bin, the first bin on each side whose count is below ``clip_fraction`` x
      the peak count sets the clipping point (the edge of that bin nearest the
      peak; none found -> the data's min/max); clip and stretch linearly to 0..255.

    The clipping follows the automated MSRCR of Parthasarathy and Sankaran ("clip the tails where the frequency falls
    below a fraction of the histogram's peak"); the widely used Python code
    takes 10% of the count of the zero bin of a log10 histogram with 0.01-wide
    bins instead, which only makes sense for MSR output centred on zero; our
    bins are relative to the channel's spread so the log base and the constant
    factors of the colour restoration do not matter.

    Grayscale: with one channel, the colour restoration of a gray image seen as
    three equal channels is the constant beta * log(alpha / 3); multiplying by a
    positive constant changes neither the (relative) histogram clipping nor the
    final stretch, so it is skipped: the result equals that of the RGB path on
    the gray image repeated to three channels.  A channel that is constant
    (no spread) is returned unchanged.
    """

    name = "retinex"

    def __init__(
        self,
        scales: tuple[float, ...] = (15.0, 80.0, 250.0),
        alpha: float = 125.0,
        beta: float = 46.0,
        clip_fraction: float = 0.1,
        bin_width: float = 0.05,
        chunk: int = 1024,
    ):
        self.scales = tuple(float(s) for s in scales)
        if not self.scales or min(self.scales) <= 0:
            raise LlferError(f"retinex.scales must be positive numbers, got {scales!r}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.clip_fraction = float(clip_fraction)
        self.bin_width = float(bin_width)
        if self.bin_width <= 0:
            raise LlferError(f"retinex.bin_width must be > 0, got {bin_width!r}")
        self.chunk = int(chunk)

    def msrcr(self, images: np.ndarray) -> np.ndarray:
        """Unclipped MSRCR (MSR for grayscale): float32 N x H x W x C."""
        x = images.astype(np.float32) + 1.0
        if x.ndim == 3:
            x = x[..., None]
        logx = np.log(x)
        msr = np.zeros_like(x)
        for s in self.scales:
            msr += logx - np.log(np.maximum(_gauss_blur(x, s), 1e-6))
        msr /= len(self.scales)
        if x.shape[-1] > 1:
            cr = self.beta * (np.log(self.alpha * x) - np.log(x.sum(axis=-1, keepdims=True)))
            msr *= cr
        return msr

    def clip_stretch(self, r: np.ndarray, ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Automated histogram clipping + stretch of N x H x W x C -> (float 0..255, ok N x C).

        ``ok`` (N x C bool) marks the channels to process; others (constant
        input) are reported as not ok and left to the caller.
        """
        n, h, w, c = r.shape
        flat = r.transpose(0, 3, 1, 2).reshape(n * c, h * w).astype(np.float64)
        lo_v, hi_v = flat.min(axis=1), flat.max(axis=1)
        sd = flat.std(axis=1)
        ok = (hi_v > lo_v) & (sd > 0) & (True if ok is None else ok.reshape(-1))
        width = np.where(ok, self.bin_width * sd, 1.0)
        nb = int(np.clip(np.ceil(((hi_v - lo_v) / width).max(initial=0.0)) + 1, 1, 100_000))
        q = np.clip(np.floor((flat - lo_v[:, None]) / width[:, None]), 0, nb - 1).astype(np.intp)
        m = len(flat)
        hist = np.bincount((q + (np.arange(m, dtype=np.intp) * nb)[:, None]).ravel(), minlength=m * nb).reshape(m, nb)
        peak = hist.argmax(axis=1)
        thr = self.clip_fraction * hist[np.arange(m), peak]
        idx = np.arange(nb)[None, :]
        sparse = hist < thr[:, None]
        above = sparse & (idx > peak[:, None])
        below = sparse & (idx < peak[:, None])
        has_above = above.any(axis=1)
        has_below = below.any(axis=1)
        k_hi = above.argmax(axis=1)  # first sparse bin above the peak
        k_lo = nb - 1 - below[:, ::-1].argmax(axis=1)  # last sparse bin below the peak
        high = np.where(has_above, lo_v + k_hi * width, hi_v)
        low = np.where(has_below, lo_v + (k_lo + 1) * width, lo_v)
        high = np.minimum(high, hi_v)
        low = np.maximum(low, lo_v)
        span = np.where(ok & (high > low), high - low, 1.0)
        out = (np.clip(flat, low[:, None], high[:, None]) - low[:, None]) / span[:, None] * 255.0
        out = out.reshape(n, c, h, w).transpose(0, 2, 3, 1)
        return out, ok.reshape(n, c)

    def enhance(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        out = np.empty_like(images)
        for i in range(0, len(images), self.chunk):
            part = images[i : i + self.chunk]
            orig = part if part.ndim == 4 else part[..., None]
            varies = orig.max(axis=(1, 2)) > orig.min(axis=(1, 2))  # N x C
            res, ok = self.clip_stretch(self.msrcr(part), varies)
            res = np.rint(res).astype(np.uint8)
            res = np.where(ok[:, None, None, :], res, orig)  # constant channel: unchanged
            out[i : i + self.chunk] = res if images.ndim == 4 else res[..., 0]
        return out
