"""Synthetic degradations: darkening, sensor noise, downscaling (registry ``DEGRADATIONS``).

Every degradation maps uint8 images (N x H x W or N x H x W x 3) to uint8 images
and is deterministic per image: randomness comes from a generator seeded by
``(seed, stable hash of the image id, degradation salt)``, never from batch
order, so a variant does not change when batching or subsetting changes.

Variants are named from params (see :func:`expand_variants`):

* ``dark_pil`` (one factor) or ``dark_pil_<pct>`` (several factors, e.g. ``dark_pil_10``);
* ``dark_gamma``;
* ``lowres_<px>`` for each size;
* combinations named in ``degrade.combos`` (e.g. ``dark_gamma_noise: [dark_gamma, noise]``),
  applied left to right.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import ConfigError
from .registry import DEGRADATIONS

_SALT = {"dark_gamma": 1, "noise": 2}


def id_seed(image_id: str) -> int:
    """A stable 32-bit hash of an image id (CRC-32; independent of PYTHONHASHSEED)."""
    return zlib.crc32(str(image_id).encode("utf-8"))


def image_rng(seed: int, image_id: str, salt: int = 0) -> np.random.Generator:
    """The per-image random generator used by every random degradation."""
    return np.random.default_rng([int(seed), id_seed(image_id), int(salt)])


@DEGRADATIONS.register("dark_pil")
def dark_pil(images: np.ndarray, *, ids: Sequence[str] = (), seed: int = 0, factor: float = 0.1) -> np.ndarray:
    """PIL ImageEnhance.Brightness darkening (seed 000, sec. 4.1.3): v -> floor(v * factor).

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
    """Linear + gamma low-light synthesis, seed 002 eq. (14) after Lv et al.: I = beta * (alpha * I)^gamma.

    On [0, 1] intensities, with alpha ~ U(alpha), beta ~ U(beta), gamma ~ U(gamma)
    drawn once per image (shared by its channels) from the image's own generator.
    """
    _check_ranges({"alpha": alpha, "beta": beta, "gamma": gamma}, "degrade.dark_gamma")
    n = len(images)
    params = np.empty((n, 3), dtype=np.float64)
    for i in range(n):
        r = image_rng(seed, ids[i], _SALT["dark_gamma"])
        params[i] = r.uniform(alpha[0], alpha[1]), r.uniform(beta[0], beta[1]), r.uniform(gamma[0], gamma[1])
    shape = (n,) + (1,) * (images.ndim - 1)
    a, b, g = (params[:, k].reshape(shape) for k in range(3))
    out = np.empty(images.shape, dtype=np.uint8)
    step = 4096
    for s in range(0, n, step):
        x = images[s : s + step].astype(np.float32) / 255.0
        y = b[s : s + step] * np.power(a[s : s + step] * x, g[s : s + step])
        out[s : s + step] = np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)
    return out


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
    """
    if shot < 0 or read < 0:
        raise ConfigError("degrade.noise: shot and read must be >= 0")
    out = np.empty(images.shape, dtype=np.uint8)
    for i in range(len(images)):
        r = image_rng(seed, ids[i], _SALT["noise"])
        x = images[i].astype(np.float64) / 255.0
        y = shot * r.poisson(x / shot) if shot > 0 else x
        if read > 0:
            y = y + r.normal(0.0, read, size=x.shape)
        out[i] = np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)
    return out


_INTERP = {"area": "BOX", "box": "BOX", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST", "lanczos": "LANCZOS"}


def resize_images(images: np.ndarray, size: int, interpolation: str = "area") -> np.ndarray:
    """Resize every image to size x size with Pillow's (antialiased) filter named ``interpolation``."""
    from PIL import Image

    if interpolation not in _INTERP:
        raise ConfigError(f"interpolation {interpolation!r} unknown; allowed: {', '.join(_INTERP)}")
    if images.shape[1] == size and images.shape[2] == size:
        return np.array(images)
    resample = getattr(Image.Resampling, _INTERP[interpolation])
    out = np.empty((len(images), size, size) + images.shape[3:], dtype=np.uint8)
    for i in range(len(images)):
        out[i] = np.asarray(Image.fromarray(np.asarray(images[i])).resize((size, size), resample))
    return out


@DEGRADATIONS.register("lowres")
def lowres(
    images: np.ndarray, *, ids: Sequence[str] = (), seed: int = 0, size: int = 12, interpolation: str = "area"
) -> np.ndarray:
    """Downscale to size x size px (seed 004: 32, 20, 15, 10, 8, 5) with a declared interpolation.

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
