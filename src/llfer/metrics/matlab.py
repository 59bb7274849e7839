"""MATLAB-compatible image operations used by NIQE: ``rgb2ycbcr``'s Y and bicubic ``imresize``.

Both reproduce the float32 steps of BasicSR's re-implementations
(``to_y_channel``, ``imresize``) so that NIQE agrees with its reference
(``matlab_resize`` is bit-identical to BasicSR's; tests/test_niqe.py checks it
when the BasicSR source is present).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..errors import LlferError

__all__ = ["matlab_resize", "rgb_to_y"]


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
