"""Synthetic degradations: darkening, sensor noise, downscaling (registry ``DEGRADATIONS``).

Every degradation maps uint8 images (N x H x W or N x H x W x 3) to uint8 images
and is deterministic per image: randomness comes from a generator seeded by
``(seed, stable hash of the image id, degradation salt)``, never from batch
order, so a variant does not change when batching or subsetting changes.
Only the per-image draws run in a Python loop; the pixel work is batched
(per-image look-up tables for ``dark_gamma``, inverse-CDF Poisson tables for
``noise``, Pillow-exact fixed-point matrix products for ``lowres``), so every
default variant of the whole of FER2013 takes seconds
(``benchmarks/bench_degrade.py``).

Variants are named from params (see :func:`expand_variants`):

* ``dark_pil`` (one factor) or ``dark_pil_<pct>`` (several factors, e.g. ``dark_pil_10``);
* ``dark_gamma``;
* ``lowres_<px>`` for each size;
* combinations named in ``degrade.combos`` (e.g. ``dark_gamma_noise: [dark_gamma, noise]``),
  applied left to right.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import ConfigError
from .registry import DEGRADATIONS
from .rng import image_rng

_SALT = {"dark_gamma": 1, "noise": 2}


@DEGRADATIONS.register("dark_pil")
def dark_pil(images: np.ndarray, *, ids: Sequence[str] = (), seed: int = 0, factor: float = 0.1) -> np.ndarray:
    """PIL ImageEnhance.Brightness darkening ([mirnet-fer], sec. 4.1.3): v -> floor(v * factor).

    ``Brightness(img).enhance(f)`` blends the image with black, which for f < 1
    is ``floor(v * f)`` on every channel (checked against Pillow on all 256
    levels in the tests).
    """
    if not 0.0 <= factor <= 1.0:
        raise ConfigError(f"degrade.dark_pil.factors: factor {factor} outside [0, 1]")
    lut = np.floor(np.arange(256, dtype=np.float64) * factor + 1e-9).clip(0, 255).astype(np.uint8)
    return lut[images]


@DEGRADATIONS.register("dark_gamma")
def dark_gamma(
    images: np.ndarray,
    *,
    ids: Sequence[str] = (),
    seed: int = 0,
    alpha: Sequence[float] = (0.9, 1.0),
    beta: Sequence[float] = (0.5, 1.0),
    gamma: Sequence[float] = (1.5, 5.0),
) -> np.ndarray:
    """Linear + gamma low-light synthesis, [ll-fer] eq. (14) after Lv et al.: I = beta * (alpha * I)^gamma.

    On [0, 1] intensities, with alpha ~ U(alpha), beta ~ U(beta), gamma ~ U(gamma)
    drawn once per image (shared by its channels) from the image's own generator.
    Inputs are uint8, so each image's curve is evaluated once on the 256 levels
    (a per-image look-up table) and then looked up for every pixel.
    """
    _check_ranges({"alpha": alpha, "beta": beta, "gamma": gamma}, "degrade.dark_gamma")
    images = np.asarray(images)
    _check_ids(images, ids, "dark_gamma")
    n = len(images)
    params = np.empty((n, 3), dtype=np.float64)
    for i in range(n):
        r = image_rng(seed, str(ids[i]), _SALT["dark_gamma"])
        params[i] = r.uniform(alpha[0], alpha[1]), r.uniform(beta[0], beta[1]), r.uniform(gamma[0], gamma[1])
    levels = (np.arange(256, dtype=np.float32) / np.float32(255.0))[None, :]
    a, b, g = (params[:, k : k + 1] for k in range(3))
    luts = np.clip(np.rint(b * np.power(a * levels, g) * 255.0), 0, 255).astype(np.uint8)  # n x 256
    return _lookup_per_image(images, luts)


def _lookup_per_image(images: np.ndarray, luts: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """out[i] = luts[i][images[i]] for uint8 images and n x 256 tables."""
    n = len(images)
    flat_luts = luts.reshape(-1)
    out = np.empty(images.shape, dtype=np.uint8)
    for s in range(0, n, chunk):
        x = np.asarray(images[s : s + chunk]).reshape(min(chunk, n - s), -1)
        off = (np.arange(s, s + len(x), dtype=np.intp) * 256)[:, None]
        out[s : s + chunk] = flat_luts[x + off].reshape((len(x),) + images.shape[1:])
    return out


def _check_ids(images: np.ndarray, ids: Sequence[str], name: str) -> None:
    if len(ids) != len(images):
        raise ValueError(f"degrade.{name}: needs one image id per image ({len(images)} images, {len(ids)} ids)")


#: Poisson noise by table inversion while the largest mean stays below this (else numpy's sampler per image).
_POISSON_TABLE_MAX_LAMBDA = 2000.0
_GUIDE = 1024


@lru_cache(maxsize=8)
def _poisson_tables(shot: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """CDF and guide tables of Poisson((v / 255) / shot) for the 256 levels v.

    ``cdf[v, k] = P(K <= k)`` for k = 0..width-1 (the last column set to 1: the
    mass beyond it, < 1e-20, is lumped there); ``guide[v, j]`` (j = 0.._GUIDE) is
    the smallest k with ``cdf[v, k] > j / _GUIDE``, so the draw for a uniform u in
    [j / _GUIDE, (j + 1) / _GUIDE) lies in ``guide[v, j] .. guide[v, j + 1]``;
    ``start[v, j] = cdf[v, guide[v, j]]``.  Returned flattened (row-major).
    """
    from scipy.special import pdtr  # Poisson CDF, P(K <= k; m)

    lam = np.arange(256, dtype=np.float64) / 255.0 / shot
    lmax = float(lam[-1])
    width = int(np.ceil(lmax + 14.0 * np.sqrt(lmax) + 40.0)) + 1
    cdf = pdtr(np.arange(width, dtype=np.float64)[None, :], lam[:, None])
    cdf[:, -1] = 1.0
    cdf = np.maximum.accumulate(cdf, axis=1)  # guard monotonicity against rounding
    grid = np.arange(_GUIDE + 1, dtype=np.float64) / _GUIDE
    guide = np.stack([np.searchsorted(row, grid, side="right") for row in cdf])
    guide = np.minimum(guide, width - 1)
    start = np.take_along_axis(cdf, guide, axis=1)
    return cdf.reshape(-1), guide.astype(np.int32).reshape(-1), start.reshape(-1), width


def _poisson_invert(v: np.ndarray, u: np.ndarray, shot: float) -> np.ndarray:
    """Inverse-CDF Poisson draws: the smallest k with ``cdf[v, k] > u``, for levels v (uint8) and uniforms u in [0, 1)."""
    cdf, guide, start, width = _poisson_tables(float(shot))
    g = v.astype(np.int32) * (_GUIDE + 1) + (u * _GUIDE).astype(np.int32)
    k = guide[g]
    todo = np.flatnonzero(start[g] <= u)
    if todo.size:  # binary search in (k, guide[j + 1]] where the guide bucket holds several CDF steps
        b, uu = v[todo].astype(np.intp) * width, u[todo]
        lo, hi = k[todo] + 1, guide[g[todo] + 1]
        while True:
            open_ = lo < hi
            if not open_.any():
                break
            mid = (lo + hi) // 2
            above = cdf[b + mid] > uu
            hi = np.where(open_ & above, mid, hi)
            lo = np.where(open_ & ~above, mid + 1, lo)
        k[todo] = lo
    return k


@DEGRADATIONS.register("noise")
def noise(
    images: np.ndarray,
    *,
    ids: Sequence[str] = (),
    seed: int = 0,
    shot: float = 0.01,
    read: float = 0.005,
) -> np.ndarray:
    """Poisson-Gaussian sensor noise: y = shot * Poisson(x / shot) + N(0, read^2) on [0, 1].

    The variance is ``shot * x + read^2`` (heteroscedastic shot noise plus read
    noise), the usual model of real dark captures; apply it after darkening.
    Each image draws, from its own generator, one uniform per pixel (turned into
    a Poisson count by inverting the exact Poisson CDF of the pixel's level; the
    inputs are uint8, so there are 256 distinct means) and then one standard
    normal per pixel.  For ``shot`` so small that a mean exceeds 2000, numpy's
    Poisson sampler is used per image instead.
    """
    if shot < 0 or read < 0:
        raise ConfigError("degrade.noise: shot and read must be >= 0")
    images = np.asarray(images)
    _check_ids(images, ids, "noise")
    n = len(images)
    out = np.empty(images.shape, dtype=np.uint8)
    if n == 0:
        return out
    table = shot > 0 and 1.0 / shot <= _POISSON_TABLE_MAX_LAMBDA
    npix = int(np.prod(images.shape[1:]))
    chunk = max(1, min(n, (1 << 22) // max(npix, 1)))
    u = np.empty((chunk, npix), dtype=np.float64)
    z = np.empty((chunk, npix), dtype=np.float64)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x8 = np.asarray(images[s : s + m]).reshape(m, npix)
        if table:
            for i in range(m):
                r = image_rng(seed, str(ids[s + i]), _SALT["noise"])
                r.random(out=u[i])
                if read > 0:
                    r.standard_normal(out=z[i])
            y = shot * _poisson_invert(x8.reshape(-1), u[:m].reshape(-1), shot).reshape(m, npix)
        else:
            y = np.empty((m, npix), dtype=np.float64)
            for i in range(m):
                r = image_rng(seed, str(ids[s + i]), _SALT["noise"])
                x = x8[i] / 255.0
                y[i] = shot * r.poisson(x / shot) if shot > 0 else x
                if read > 0:
                    r.standard_normal(out=z[i])
        if read > 0:
            y = y + read * z[:m]
        out[s : s + m] = np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8).reshape((m,) + images.shape[1:])
    return out


_INTERP = {"area": "BOX", "box": "BOX", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST", "lanczos": "LANCZOS"}


_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images (libImaging/Resample.c)


def _bicubic(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


_FILTERS: dict[str, tuple[float, Callable[[float], float]]] = {
    "BOX": (0.5, lambda x: 1.0 if -0.5 < x <= 0.5 else 0.0),
    "BILINEAR": (1.0, lambda x: 1.0 - abs(x) if abs(x) < 1.0 else 0.0),
    "BICUBIC": (2.0, _bicubic),
    "LANCZOS": (3.0, lambda x: _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0),
}


@lru_cache(maxsize=64)
def _pillow_coeffs(in_size: int, out_size: int, filt: str) -> np.ndarray:
    """Pillow's fixed-point resampling weights (out_size x in_size), as ``precompute_coeffs`` +
    ``normalize_coeffs_8bpc`` compute them (same double arithmetic, same order)."""
    support, fn = _FILTERS[filt]
    scale = filterscale = float(in_size) / out_size
    if filterscale < 1.0:
        filterscale = 1.0
    support = support * filterscale
    ss = 1.0 / filterscale
    w = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [fn((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for v in k:
            ww += v
        for x, v in enumerate(k):
            if ww != 0.0:
                v = v / ww
            w[xx, xmin + x] = int(-0.5 + v * (1 << _PRECISION_BITS)) if v < 0 else int(0.5 + v * (1 << _PRECISION_BITS))
    return w


def _fixed_round(acc: np.ndarray) -> np.ndarray:
    """Pillow's ``clip8``: (acc + 2^(P-1)) >> P, clipped to 0..255 (acc holds exact integers)."""
    half = float(1 << (_PRECISION_BITS - 1))
    return np.clip(np.floor((acc + half) * (1.0 / (1 << _PRECISION_BITS))), 0, 255)


def _resize_nchw(x: np.ndarray, size: int, filt: str, order: str = "hv") -> np.ndarray:
    """Pillow's two-pass 8-bit resampling of N x H x W uint8 images, vectorised (``order``: "hv" = horizontal pass first).

    Each pass rounds to uint8 as Pillow does.  Every product of a pixel and a
    fixed-point weight and every partial sum is an integer below 2^53, so the
    float64 matrix products are exact in any summation order.
    """
    n, h, w = x.shape
    t = x.astype(np.float64)
    for axis in order:
        if axis == "h" and t.shape[2] != size:
            rows, cols = t.shape[1], t.shape[2]
            t = _fixed_round(t.reshape(n * rows, cols) @ _pillow_coeffs(cols, size, filt).T).reshape(n, rows, size)
        elif axis == "v" and t.shape[1] != size:
            rows, cols = t.shape[1], t.shape[2]
            kv = _pillow_coeffs(rows, size, filt)
            t = _fixed_round(kv @ t.transpose(1, 0, 2).reshape(rows, n * cols)).reshape(size, n, cols).transpose(1, 0, 2)
    return t.astype(np.uint8)


@lru_cache(maxsize=256)
def _pillow_pass_order(h: int, w: int, size: int, filt: str) -> str | None:
    """The pass order ("hv" or "vh") that reproduces the installed Pillow for h x w -> size x size, or None.

    Pillow up to 12 always resamples horizontally first; later versions may run
    the vertical pass first for some shapes.  A random probe image settles it
    once per shape; None (no order matches) sends the caller to Pillow itself.
    """
    from PIL import Image

    probe = np.random.default_rng(20240607).integers(0, 256, (3, h, w), dtype=np.uint8)
    ref = np.stack([np.asarray(Image.fromarray(p).resize((size, size), getattr(Image.Resampling, filt))) for p in probe])
    for order in ("hv", "vh"):
        if np.array_equal(_resize_nchw(probe, size, filt, order), ref):
            return order
    return None


def _one_blas_thread() -> Any:
    """Single-threaded BLAS for the many small matrix products of the resize (threads only add overhead there)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def resize_images(images: np.ndarray, size: int, interpolation: str = "area", chunk: int = 512) -> np.ndarray:
    """Resize every image to size x size exactly as Pillow's ``Image.resize`` with the filter named ``interpolation``.

    ``area``/``box``, ``bilinear``, ``bicubic`` and ``lanczos`` (antialiased when
    downscaling) are computed in batches with Pillow's own fixed-point weights and
    per-pass rounding, in the pass order the installed Pillow uses (probed once per
    shape), so the result is bit-identical to Pillow (checked in the tests).
    ``nearest``, and any shape where the probe finds no match, go through Pillow
    image by image.
    """
    if interpolation not in _INTERP:
        raise ConfigError(f"interpolation {interpolation!r} unknown; allowed: {', '.join(_INTERP)}")
    images = np.asarray(images)
    if images.shape[1] == size and images.shape[2] == size:
        return np.array(images)
    filt = _INTERP[interpolation]
    out = np.empty((len(images), size, size) + images.shape[3:], dtype=np.uint8)
    order = None if filt == "NEAREST" else _pillow_pass_order(int(images.shape[1]), int(images.shape[2]), int(size), filt)
    if order is None:
        from PIL import Image

        resample = getattr(Image.Resampling, filt)
        for i in range(len(images)):
            out[i] = np.asarray(Image.fromarray(np.asarray(images[i])).resize((size, size), resample))
        return out
    rgb = images.ndim == 4
    with _one_blas_thread():
        for s in range(0, len(images), chunk):
            x = np.asarray(images[s : s + chunk])
            if rgb:
                m, h, w, c = x.shape
                y = _resize_nchw(x.transpose(0, 3, 1, 2).reshape(m * c, h, w), size, filt, order)
                out[s : s + chunk] = y.reshape(m, c, size, size).transpose(0, 2, 3, 1)
            else:
                out[s : s + chunk] = _resize_nchw(x, size, filt, order)
    return out


@DEGRADATIONS.register("lowres")
def lowres(
    images: np.ndarray, *, ids: Sequence[str] = (), seed: int = 0, size: int = 12, interpolation: str = "area"
) -> np.ndarray:
    """Downscale to size x size px ([efc-lowres]: 32, 20, 15, 10, 8, 5) with a declared interpolation.

    The stored variant keeps the small size; consumers resize to their model input.
    """
    if size < 1:
        raise ConfigError("degrade.lowres.sizes: sizes must be >= 1")
    return resize_images(images, size, interpolation)


def _check_ranges(ranges: Mapping[str, Sequence[float]], where: str) -> None:
    for k, v in ranges.items():
        if len(v) != 2 or float(v[0]) > float(v[1]):
            raise ConfigError(f"{where}.{k}: expected [low, high] with low <= high, got {list(v)}")


@dataclass(frozen=True)
class Step:
    type: str
    params: dict[str, Any]


def _fmt_factor(f: float) -> str:
    pct = f * 100
    return str(int(round(pct))) if abs(pct - round(pct)) < 1e-9 else f"{pct:g}".replace(".", "p")


def expand_variants(cfg: Mapping[str, Any]) -> dict[str, list[Step]]:
    """Variant name -> list of degradation steps, from the ``degrade`` params section."""
    variants: dict[str, list[Step]] = {}
    base: dict[str, Step] = {}
    pil = cfg.get("dark_pil")
    if pil:
        factors = list(pil.get("factors", [0.1]))
        for f in factors:
            name = "dark_pil" if len(factors) == 1 else f"dark_pil_{_fmt_factor(f)}"
            base[name] = Step("dark_pil", {"factor": float(f)})
            variants[name] = [base[name]]
    g = cfg.get("dark_gamma")
    if g:
        base["dark_gamma"] = Step("dark_gamma", {k: list(v) for k, v in g.items()})
        variants["dark_gamma"] = [base["dark_gamma"]]
    lr = cfg.get("lowres")
    if lr:
        for s in lr.get("sizes", []):
            name = f"lowres_{int(s)}"
            base[name] = Step("lowres", {"size": int(s), "interpolation": lr.get("interpolation", "area")})
            variants[name] = [base[name]]
    nz = cfg.get("noise")
    if nz is not None:
        base["noise"] = Step("noise", dict(nz))
    for name, chain in (cfg.get("combos") or {}).items():
        steps = []
        for part in chain:
            if part not in base:
                raise ConfigError(
                    f"degrade.combos.{name}: unknown part {part!r}; allowed: {', '.join(sorted(base))}"
                )
            steps.append(base[part])
        if name in variants:
            raise ConfigError(f"degrade.combos.{name}: name clashes with a base variant")
        variants[name] = steps
    return variants


def apply_steps(images: np.ndarray, ids: Sequence[str], steps: Sequence[Step], seed: int) -> np.ndarray:
    out = images
    for st in steps:
        fn: Callable[..., np.ndarray] = DEGRADATIONS.get(st.type)
        out = fn(np.asarray(out), ids=ids, seed=seed, **st.params)
    return out
