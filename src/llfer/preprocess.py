"""FER input preprocessors (registry ``PREPROCESSORS``): HE, GCN, GCN+HE, salt-and-pepper, Sobel 3-channel.

Every entry is a function::

    f(images, *, ids, train, seed, **params) -> images

mapping uint8 N x H x W (grey) or N x H x W x 3 (RGB) to uint8, so the fast
data path stays uint8 end to end.  ``ids`` are the images' dataset ids,
``train`` says whether the images are training images (``salt_pepper`` only
acts then) and ``seed`` is the run's seed; per-image randomness comes from
:func:`llfer.rng.image_rng` ``(seed, name, id)``, never from the
batch order.  Chains are applied by :func:`apply_preprocessors`.

Fixed mappings back to uint8 (the same for every image, so train and test
agree):

* ``gcn``: ``u = clip(rint(127.5 + 127.5 * X' / span), 0, 255)``, i.e.
  X' in [-span, span] (default span = 3, three standard deviations at s = 1)
  -> [0, 255]; a constant image becomes 128 everywhere;
* ``sobel3``: ``mode='signed'`` (default): ``clip(rint(128 + gain * G / 8))``;
  ``mode='abs'``: ``clip(rint(gain * |G| / 4))``.  A 3x3 Sobel response of a
  uint8 image lies in [-1020, 1020], so ``gain = 1`` maps the whole possible
  range without clipping; the default ``gain = 4`` saturates only above
  |G| = 255 (a step of 64 grey levels between neighbours), which keeps facial
  gradients (mostly far below that) visible.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ConfigError, LlferError
from .registry import PREPROCESSORS, check_kwargs
from .rng import image_rng

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV's RGB2GRAY


# ------------------------------------------------------------------ helpers --
def _check(images: np.ndarray, ids: Sequence[str] | None = None, name: str = "") -> np.ndarray:
    images = np.asarray(images)
    where = f"preprocessor {name}: " if name else ""
    if images.dtype != np.uint8:
        raise LlferError(f"{where}images must be uint8, got {images.dtype}")
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise LlferError(f"{where}images must be N x H x W or N x H x W x 3, got shape {images.shape}")
    if ids is not None and len(ids) != len(images):
        raise LlferError(f"{where}{len(ids)} ids for {len(images)} images")
    return images


def to_gray(images: np.ndarray) -> np.ndarray:
    """uint8 RGB N x H x W x 3 -> uint8 grey (BT.601 luma); grey passes through."""
    if images.ndim == 3:
        return images
    y = images.astype(np.float32) @ np.asarray(LUMA, dtype=np.float32)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _he(images: np.ndarray) -> np.ndarray:
    from .enhance.classical.he import HistogramEqualization

    return HistogramEqualization().enhance(images)


# ---------------------------------------------------------------------- HE --
@PREPROCESSORS.register("he")
def he(images: np.ndarray, *, ids: Sequence[str], train: bool, seed: int) -> np.ndarray:
    """Histogram equalisation per image ([mini-xception-fer]; grey, or the HSV V channel of RGB).

    Same mapping as the ``he`` enhancer (OpenCV ``equalizeHist``):
    ``v -> round(255 (cdf(v) - cdf_min) / (n - cdf_min))``; a constant image is
    left unchanged.
    """
    return _he(_check(images, ids, "he"))


# --------------------------------------------------------------------- GCN --
def gcn_float(images: np.ndarray, s: float = 1.0, lam: float = 10.0, eps: float = 1e-8) -> np.ndarray:
    """Global contrast normalisation ([mini-xception-fer]; Goodfellow et al., *Deep Learning*, sec. 12.2.1.1), per image, on 0..255 values.

    ``X' = s (X - mean X) / max(eps, sqrt(lam + mean((X - mean X)^2)))`` with the
    mean taken over all pixels and channels of the image.  Returns float32.
    """
    x = images.astype(np.float64)
    axes = tuple(range(1, x.ndim))
    x = x - x.mean(axis=axes, keepdims=True)
    denom = np.maximum(eps, np.sqrt(lam + (x * x).mean(axis=axes, keepdims=True)))
    return (s * x / denom).astype(np.float32)


def _gcn_uint8(x: np.ndarray, span: float) -> np.ndarray:
    return np.clip(np.rint(127.5 + 127.5 * x / span), 0, 255).astype(np.uint8)


def _gcn_params(s: float, lam: float, eps: float, span: float) -> None:
    if lam < 0:
        raise ConfigError(f"gcn: lam must be >= 0, got {lam}")
    if eps <= 0:
        raise ConfigError(f"gcn: eps must be > 0, got {eps}")
    if span <= 0:
        raise ConfigError(f"gcn: span must be > 0, got {span}")
    if lam == 0 and eps < 1e-12:
        raise ConfigError("gcn: with lam = 0, eps must be positive to avoid division by zero")
    del s


@PREPROCESSORS.register("gcn")
def gcn(
    images: np.ndarray,
    *,
    ids: Sequence[str],
    train: bool,
    seed: int,
    s: float = 1.0,
    lam: float = 10.0,
    eps: float = 1e-8,
    span: float = 3.0,
) -> np.ndarray:
    """Global contrast normalisation ([mini-xception-fer]), then the fixed map X' in [-span, span] -> 0..255.

    ``s``, ``lam`` (lambda) and ``eps`` as in Goodfellow et al.'s GCN (defaults s = 1,
    lambda = 10, eps = 1e-8 on 0..255 data); ``u = rint(127.5 + 127.5 X'/span)``
    clipped to 0..255, the same affine map for every image.
    """
    images = _check(images, ids, "gcn")
    _gcn_params(s, lam, eps, span)
    return _gcn_uint8(gcn_float(images, s, lam, eps), span)


@PREPROCESSORS.register("gcn_he")
def gcn_he(
    images: np.ndarray,
    *,
    ids: Sequence[str],
    train: bool,
    seed: int,
    s: float = 1.0,
    lam: float = 10.0,
    eps: float = 1e-8,
    span: float = 3.0,
) -> np.ndarray:
    """GCN then histogram equalisation ([mini-xception-fer]'s "GCN + HE", in that order)."""
    images = _check(images, ids, "gcn_he")
    _gcn_params(s, lam, eps, span)
    return _he(_gcn_uint8(gcn_float(images, s, lam, eps), span))


# --------------------------------------------------------- salt and pepper --
@PREPROCESSORS.register("salt_pepper")
def salt_pepper(
    images: np.ndarray,
    *,
    ids: Sequence[str],
    train: bool,
    seed: int,
    rate: float = 0.05,
    salt_ratio: float = 0.5,
) -> np.ndarray:
    """Salt-and-pepper noise on training images only ([mini-xception-fer]); identity at test time.

    Each pixel is replaced with probability ``rate`` ([mini-xception-fer] gives no value;
    0.05 is scikit-image's ``random_noise`` default), by 255 (salt) with
    probability ``salt_ratio`` and by 0 (pepper) otherwise; in RGB images the
    whole pixel is replaced.  The noise of an image depends only on (seed, id),
    so it does not change with batching or order.
    """
    images = _check(images, ids, "salt_pepper")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"salt_pepper: rate must be in [0, 1], got {rate}")
    if not 0.0 <= salt_ratio <= 1.0:
        raise ConfigError(f"salt_pepper: salt_ratio must be in [0, 1], got {salt_ratio}")
    if not train or rate == 0:
        return images
    out = images.copy()
    hw = images.shape[1:3]
    for i, image_id in enumerate(ids):
        u = image_rng(seed, "salt_pepper", str(image_id)).random(hw)
        out[i][u < rate * (1.0 - salt_ratio)] = 0
        out[i][(u >= rate * (1.0 - salt_ratio)) & (u < rate)] = 255
    return out


# ------------------------------------------------------------------- Sobel --
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
SOBEL_Y = SOBEL_X.T.copy()  # [[-1,-2,-1],[0,0,0],[1,2,1]]; the paper prints Gx twice


def sobel(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 Sobel responses (float32) of uint8 N x H x W, as OpenCV's ``Sobel``.

    Correlation with ``SOBEL_X`` / ``SOBEL_Y`` (so Gx > 0 where intensity grows
    to the right, Gy > 0 where it grows downwards) with reflect-101 borders
    (OpenCV's default).
    """
    g = gray.astype(np.float32)
    p = np.pad(g, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    h, w = g.shape[1:]
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    for dy in range(3):
        for dx in range(3):
            win = p[:, dy : dy + h, dx : dx + w]
            if SOBEL_X[dy, dx]:
                gx += SOBEL_X[dy, dx] * win
            if SOBEL_Y[dy, dx]:
                gy += SOBEL_Y[dy, dx] * win
    return gx, gy


@PREPROCESSORS.register("sobel3")
def sobel3(
    images: np.ndarray,
    *,
    ids: Sequence[str],
    train: bool,
    seed: int,
    mode: str = "signed",
    gain: float = 4.0,
) -> np.ndarray:
    """3-channel [gray, Sobel Gx, Sobel Gy] image ([sobel-alexnet]) -> N x H x W x 3 uint8.

    RGB input is converted to grey first (BT.601).  Gradient channels:
    ``signed``: ``128 + gain * G / 8``; ``abs``: ``gain * |G| / 4``; rounded and
    clipped to 0..255, the same for every image (gain 1 fits the full
    [-1020, 1020] range of a 3x3 Sobel on uint8 without clipping).
    """
    images = _check(images, ids, "sobel3")
    if mode not in ("signed", "abs"):
        raise ConfigError(f"sobel3: mode must be 'signed' or 'abs', got {mode!r}")
    if gain <= 0:
        raise ConfigError(f"sobel3: gain must be > 0, got {gain}")
    gray = to_gray(images)
    gx, gy = sobel(gray)
    if mode == "signed":
        cx, cy = 128.0 + gain * gx / 8.0, 128.0 + gain * gy / 8.0
    else:
        cx, cy = gain * np.abs(gx) / 4.0, gain * np.abs(gy) / 4.0
    to8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return np.stack([gray, to8(cx), to8(cy)], axis=-1)


# ------------------------------------------------------------------- chains --
def apply_preprocessors(
    names: Sequence[str],
    images: np.ndarray,
    *,
    ids: Sequence[str],
    train: bool,
    seed: int,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> np.ndarray:
    """Apply the preprocessors ``names`` in order; ``params[name]`` are each one's options.

    Unknown names (and unknown options) raise ConfigError listing the allowed ones.
    """
    params = params or {}
    ids = [str(i) for i in ids]
    entries = [PREPROCESSORS.entry(n, key="preprocess") for n in names]
    for n, e in zip(names, entries):
        opts = dict(params.get(n) or {})
        reserved = {"images", "ids", "train", "seed"} & set(opts)
        if reserved:
            raise ConfigError(f"preprocess.{n}: {sorted(reserved)} are not options")
        check_kwargs(e.obj, opts, f"preprocess.{n}")
    out = _check(images, ids)
    for n, e in zip(names, entries):
        out = e.obj(out, ids=ids, train=train, seed=seed, **dict(params.get(n) or {}))
        out = _check(out, ids, n)
    return out
