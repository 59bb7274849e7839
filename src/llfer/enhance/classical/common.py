"""Helpers shared by the classical enhancers: input check, the intensity channel, per-image maps.

Colour handling: the intensity-only methods (``he``, ``clahe``, ``agc``, ``gain``)
work on the V channel of HSV (V = max(R, G, B)).  Replacing V while keeping H
and S is the same as scaling the pixel's RGB triple by V_new / V_old, which is
what :func:`apply_value` does (pixels with V_old = 0 become grey V_new).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...errors import LlferError


def check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise LlferError(f"enhancer input must be uint8, got {images.dtype}")
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise LlferError(f"enhancer input must be N x H x W or N x H x W x 3, got shape {images.shape}")
    return images


def value_channel(images: np.ndarray) -> np.ndarray:
    """The intensity channel: the image itself (gray) or HSV V = max(R, G, B) (RGB)."""
    return images if images.ndim == 3 else images.max(axis=-1)


def apply_value(images: np.ndarray, v_new: np.ndarray) -> np.ndarray:
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


def apply_lut(v: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Per-image look-up: ``v`` uint8 N x H x W, ``luts`` N x 256 -> N x H x W (luts' dtype)."""
    n = v.shape[0]
    flat = v.reshape(n, -1).astype(np.intp) + (np.arange(n, dtype=np.intp) * 256)[:, None]
    return luts.reshape(-1)[flat].reshape(v.shape)


def map_value_per_image(
    images: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], chunk: int = 512
) -> np.ndarray:
    """Apply ``fn`` (uint8 H x W -> uint8 H x W) to the intensity of every image, ``chunk`` images at a time.

    The batched wrapper of the OpenCV per-image calls: gray images are mapped
    directly; RGB images get the mapped V channel back through :func:`apply_value`
    (so the float32 buffers stay ``chunk`` images large).
    """
    images = check_images(images)
    if chunk < 1:
        raise LlferError(f"chunk must be >= 1, got {chunk!r}")
    out = np.empty_like(images)
    for s in range(0, len(images), chunk):
        part = images[s : s + chunk]
        v = value_channel(part)
        v_new = np.empty(v.shape, dtype=np.uint8)
        for i, img in enumerate(v):
            v_new[i] = fn(np.ascontiguousarray(img))
        out[s : s + chunk] = v_new if images.ndim == 3 else apply_value(part, v_new.astype(np.float32))
    return out
