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


@ENHANCERS.register("none")
class NoEnhancement(Identity):
    """No enhancement (alias of identity)."""

    name = "none"


# ----------------------------------------------------------------------------- HE
@ENHANCERS.register("he")
class HistogramEqualization(Enhancer):
    """Global histogram equalisation per image (gray, or the HSV V channel of RGB).

    Textbook / OpenCV ``equalizeHist`` mapping: with the cumulative histogram
    ``cdf`` of the image's 256 levels and ``cdf_min`` its first non-zero value,
    ``v -> round(255 * (cdf(v) - cdf_min) / (n_pixels - cdf_min))``, so the
    darkest level present maps to 0 and the brightest to 255.  A constant image
    is returned unchanged.  All images of the batch are done at once (one
    bincount, one gather).
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
