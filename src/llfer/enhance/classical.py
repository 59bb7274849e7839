"""Classical (training-free) low-light enhancers.

Every class here maps uint8 images, N x H x W (grayscale) or N x H x W x 3
(RGB), to uint8 images of the same shape, and is registered in
``llfer.registry.ENHANCERS`` under its ``name``.

Colour handling: the intensity-only methods (``he``, ``clahe``, ``agc``, ``gain``)
work on the V channel of HSV (V = max(R, G, B)).  Replacing V while keeping H
and S is the same as scaling the pixel's RGB triple by V_new / V_old, which is
what :func:`_apply_v` does (pixels with V_old = 0 become grey V_new).
"""

from __future__ import annotations

import numpy as np

from ..errors import LlferError
from ..registry import ENHANCERS
from .base import Enhancer


# ----------------------------------------------------------------------------- helpers
def _check(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise LlferError(f"enhancer input must be uint8, got {images.dtype}")
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise LlferError(f"enhancer input must be N x H x W or N x H x W x 3, got shape {images.shape}")
    return images


def _value(images: np.ndarray) -> np.ndarray:
    """The intensity channel: the image itself (gray) or HSV V = max(R, G, B) (RGB)."""
    return images if images.ndim == 3 else images.max(axis=-1)


def _apply_v(images: np.ndarray, v_new: np.ndarray) -> np.ndarray:
    """Put a new V channel (float, 0..255 scale, N x H x W) back into the images -> uint8.

    For RGB, keeps HSV hue and saturation: RGB is scaled by V_new / V_old; pixels
    whose V_old is 0 (black, saturation undefined) become grey with value V_new.
    """
    v_new = np.clip(v_new, 0.0, 255.0)
    if images.ndim == 3:
        return np.rint(v_new).astype(np.uint8)
    v_old = images.max(axis=-1).astype(np.float32)
    ratio = np.divide(v_new, v_old, out=np.zeros_like(v_old, dtype=np.float32), where=v_old > 0)
    out = images.astype(np.float32) * ratio[..., None]
    black = v_old == 0
    if black.any():
        out[black] = v_new[black][:, None]
    return np.rint(np.clip(out, 0.0, 255.0)).astype(np.uint8)


def _apply_lut(v: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Per-image look-up: ``v`` uint8 N x H x W, ``luts`` N x 256 -> N x H x W (luts' dtype)."""
    n = v.shape[0]
    flat = v.reshape(n, -1).astype(np.intp) + (np.arange(n, dtype=np.intp) * 256)[:, None]
    return luts.reshape(-1)[flat].reshape(v.shape)


def _histograms(v: np.ndarray) -> np.ndarray:
    """Per-image 256-bin histograms of uint8 N x H x W -> int64 N x 256 (one bincount)."""
    n = v.shape[0]
    flat = v.reshape(n, -1).astype(np.intp) + (np.arange(n, dtype=np.intp) * 256)[:, None]
    return np.bincount(flat.ravel(), minlength=256 * n).reshape(n, 256)


# ----------------------------------------------------------------------------- identity
@ENHANCERS.register("identity")
class Identity(Enhancer):
    """No enhancement: returns the input unchanged (the 'raw' row of a table)."""

    name = "identity"

    def enhance(self, images: np.ndarray) -> np.ndarray:
        return _check(images).copy()


# ----------------------------------------------------------------------------- HE
@ENHANCERS.register("he")
class HistogramEqualization(Enhancer):
    """Global histogram equalisation per image (gray, or the HSV V channel of RGB).

    Textbook / OpenCV ``equalizeHist`` mapping: with the cumulative histogram
    ``cdf`` of the image's 256 levels and ``cdf_min`` its first non-zero value,
    ``v -> round(255 * (cdf(v) - cdf_min) / (n_pixels - cdf_min))``, so the
    darkest level present maps to 0 and the brightest to 255.  A constant image
    is returned unchanged.  All images of the batch are done at once (one
    bincount, one gather).  Bit-identical to ``cv2.equalizeHist`` on gray
    images (tests/test_classical.py checks it when cv2 is installed).
    """

    name = "he"

    def __init__(self):
        pass

    def enhance(self, images: np.ndarray) -> np.ndarray:
        images = _check(images)
        if len(images) == 0:
            return images.copy()
        v = _value(images)
        luts = he_luts(_histograms(v))
        v_new = _apply_lut(v, luts)
        if images.ndim == 3:
            return v_new.astype(np.uint8)
        return _apply_v(images, v_new.astype(np.float32))


def he_luts(hist: np.ndarray) -> np.ndarray:
    """Equalisation look-up tables (N x 256 float, 0..255 integers) from N x 256 histograms."""
    cdf = np.cumsum(hist, axis=1, dtype=np.int64)
    total = cdf[:, -1:]
    # first non-zero cdf value = count of the lowest level present
    cdf_min = np.take_along_axis(cdf, (hist > 0).argmax(axis=1)[:, None], axis=1)
    denom = total - cdf_min
    lut = np.rint(255.0 * (cdf - cdf_min) / np.maximum(denom, 1))
    lut = np.clip(lut, 0, 255)
    const = (denom == 0)[:, 0]
    if const.any():  # single-level image: leave it as it is
        lut[const] = np.arange(256)
    return lut


# ----------------------------------------------------------------------------- CLAHE
def _pair(v, what: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        raise LlferError(f"{what} must be an int or a pair of ints, got {v!r}") from None
    if a < 1 or b < 1:
        raise LlferError(f"{what} must be >= 1, got {v!r}")
    return a, b


@ENHANCERS.register("clahe")
class CLAHE(Enhancer):
    """Contrast-limited adaptive histogram equalisation (OpenCV's algorithm, batched).

    A re-implementation of ``cv2.createCLAHE(clipLimit, tileGridSize).apply``
    for 8-bit images, vectorised over the batch:

    - the image is split into ``tiles`` = (rows, cols) tiles; when its size is not
      a multiple of the grid it is first padded at the bottom/right by
      reflection (OpenCV's BORDER_REFLECT_101) for the tile histograms only;
    - each tile's 256-bin histogram is clipped at
      ``max(1, int(clip_limit * tile_pixels / 256))`` counts (``clip_limit`` is a
      multiple of the mean bin height, as in OpenCV; <= 0 disables clipping);
      the clipped excess is spread evenly over the bins, its remainder one count
      at a time at a regular stride, as OpenCV does;
    - each tile's look-up table is ``round(cdf * 255 / tile_pixels)``, and every
      pixel is mapped by bilinear interpolation between the four nearest tile
      centres (clamped at the borders), in float32 as OpenCV does.

    Bit-identical to OpenCV on gray images for every grid and clip tried
    (including grids that do not divide 48); the test checks it when cv2 is
    installed.

    Note for 48x48 faces: with the OpenCV defaults (clip 2.0, 8 x 8 tiles of
    6 x 6 pixels) the integer clip is 1 count per level, i.e. strong local
    equalisation; a smaller grid (e.g. 3 x 3 tiles of 16 x 16) makes
    ``clip_limit`` act more gently.  RGB images are processed on the HSV V channel.
    """

    name = "clahe"

    def __init__(self, clip_limit: float = 2.0, tiles: tuple[int, int] | int = (8, 8), chunk: int = 512):
        self.clip_limit = float(clip_limit)
        self.tiles = _pair(tiles, "clahe.tiles")
        self.chunk = int(chunk)

    def enhance(self, images: np.ndarray) -> np.ndarray:
        images = _check(images)
        if len(images) == 0:
            return images.copy()
        v = _value(images)
        out = np.empty(v.shape, dtype=np.float32)
        for i in range(0, len(v), self.chunk):
            out[i : i + self.chunk] = self._clahe(v[i : i + self.chunk])
        if images.ndim == 3:
            return out.astype(np.uint8)
        return _apply_v(images, out)

    def _clahe(self, v: np.ndarray) -> np.ndarray:
        """uint8 n x H x W -> float32 n x H x W with integer values (0..255)."""
        n, h, w = v.shape
        ty, tx = self.tiles
        ph = (ty - h % ty) if h % ty else 0
        pw = (tx - w % tx) if w % tx else 0
        if ph >= h or pw >= w:
            raise LlferError(f"clahe: image {h}x{w} is too small for a {ty}x{tx} tile grid")
        src = np.pad(v, ((0, 0), (0, ph), (0, pw)), mode="reflect") if (ph or pw) else v
        th, tw = src.shape[1] // ty, src.shape[2] // tx
        area = th * tw
        # per-tile histograms: n x ty x tx x 256
        tiles = src.reshape(n, ty, th, tx, tw).transpose(0, 1, 3, 2, 4).reshape(n * ty * tx, area)
        m = tiles.shape[0]
        flat = tiles.astype(np.intp) + (np.arange(m, dtype=np.intp) * 256)[:, None]
        hist = np.bincount(flat.ravel(), minlength=256 * m).reshape(m, 256)
        if self.clip_limit > 0:
            limit = max(int(self.clip_limit * area / 256), 1)
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
        return np.clip(np.rint(res), 0, 255).astype(np.float32)


# ----------------------------------------------------------------------------- AGC
@ENHANCERS.register("agc")
class AdaptiveGammaCorrection(Enhancer):
    """Adaptive gamma correction (Rahman et al., EURASIP J. Image Video Process. 2016:35).

    On the intensity I in [0, 1] (gray image, or HSV V channel of RGB, whose H
    and S are kept), with mean ``mu`` and standard deviation ``sigma`` of I over
    the image (population std):

    - contrast class (paper Eq. 4): D = (mu + 2 sigma) - (mu - 2 sigma) = 4 sigma;
      *low contrast* when D <= 1/tau (tau = 3), otherwise moderate/high contrast;
    - gamma: low contrast -> gamma = -log2(sigma) (Eq. 7); moderate/high contrast
      -> gamma = exp((1 - (mu + sigma)) / 2) (Eq. 10);
    - brightness class: *dark* when mu < 0.5, else bright;
    - transform (Eqs. 5, 8, 9): I_out = c * I^gamma with
      c = 1 / (1 + H(0.5 - mu) * (k - 1)), k = I^gamma + (1 - I^gamma) * mu^gamma,
      H the Heaviside step; so bright images get c = 1 (plain gamma) and dark
      ones I_out = I^gamma / (I^gamma + (1 - I^gamma) * mu^gamma).

    These are the equations of METHODS.md; the original paper could be
    consulted only through its abstract here, and nothing in it contradicts
    them.  mu = 0.5 exactly counts as bright (H(0.5 - mu) taken as 0 at 0, as
    "dark when mu < 0.5" says).  Degenerate input: a constant image
    (sigma = 0, gamma = -log2(0) undefined) is returned unchanged.  Each image is
    transformed through its own 256-entry look-up table (batched).
    """

    name = "agc"

    def __init__(self, tau: float = 3.0):
        self.tau = float(tau)

    def gammas(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-image (gamma, mu, sigma) of uint8 intensities N x H x W."""
        x = v.reshape(len(v), -1).astype(np.float64) / 255.0
        mu = x.mean(axis=1)
        sigma = x.std(axis=1)
        low = 4.0 * sigma <= 1.0 / self.tau
        with np.errstate(divide="ignore"):
            g_low = -np.log2(sigma)
        g_high = np.exp((1.0 - (mu + sigma)) / 2.0)
        return np.where(low, g_low, g_high), mu, sigma

    def luts(self, v: np.ndarray) -> np.ndarray:
        """Per-image look-up tables N x 256 (float, 0..255 scale)."""
        gamma, mu, sigma = self.gammas(v)
        levels = np.arange(256, dtype=np.float64)[None, :] / 255.0
        g = gamma[:, None]
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            ig = levels**g
            mg = mu[:, None] ** g
            k = ig + (1.0 - ig) * mg
            dark = (mu < 0.5)[:, None]
            out = np.where(dark, np.divide(ig, k, out=np.zeros_like(ig), where=k > 0), ig)
        lut = out * 255.0
        flat = v.reshape(len(v), -1)
        const = flat.min(axis=1) == flat.max(axis=1)  # sigma = 0 exactly
        if const.any():
            lut[const] = np.arange(256, dtype=np.float64)
        return lut

    def enhance(self, images: np.ndarray) -> np.ndarray:
        images = _check(images)
        if len(images) == 0:
            return images.copy()
        v = _value(images)
        v_new = _apply_lut(v, self.luts(v))
        return _apply_v(images, v_new)


# ----------------------------------------------------------------------------- Retinex (automated MSRCR)
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

    The clipping follows METHODS.md ("clip the tails where the frequency falls
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
        images = _check(images)
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


# ----------------------------------------------------------------------------- global gain
@ENHANCERS.register("gain")
class GlobalGain(Enhancer):
    """Global gain: scale each image so its mean brightness reaches a target, then clip.

    ``target_mean`` is a fraction of 255 (default 0.5, i.e. 127.5; the clean
    FER2013 faces average about 0.5 too).  The gain of an image is
    ``target_mean * 255 / mean(I)`` (I the gray image or the HSV V channel of RGB,
    whose H and S are kept), capped at ``max_gain`` when given; values are then
    clipped to 0..255, so images that saturate end up slightly below the target.
    An all-black image is returned unchanged.  This is the natural baseline
    for PIL-style darkening, which is a pure gain (seed 000).
    """

    name = "gain"

    def __init__(self, target_mean: float = 0.5, max_gain: float | None = None):
        if not 0.0 < float(target_mean) <= 1.0:
            raise LlferError(f"gain.target_mean must be in (0, 1] (a fraction of 255), got {target_mean!r}")
        self.target_mean = float(target_mean)
        self.max_gain = None if max_gain is None else float(max_gain)

    def enhance(self, images: np.ndarray) -> np.ndarray:
        images = _check(images)
        if len(images) == 0:
            return images.copy()
        v = _value(images).astype(np.float32)
        mean = v.reshape(len(v), -1).mean(axis=1)
        gain = np.divide(self.target_mean * 255.0, mean, out=np.ones_like(mean), where=mean > 0)
        if self.max_gain is not None:
            gain = np.minimum(gain, self.max_gain)
        return _apply_v(images, v * gain[:, None, None])
