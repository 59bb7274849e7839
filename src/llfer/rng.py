"""The per-image random generator shared by every random degradation and preprocessor."""

from __future__ import annotations

import zlib

import numpy as np


def image_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """``np.random.default_rng([seed, k1, k2, ...])``: one stream per image and use, independent of batch order.

    ``keys`` name the image (its id) and the use (a degradation's salt, a
    preprocessor's name); a string enters as its CRC-32 (stable, independent
    of PYTHONHASHSEED), an int as it is.  ``seed`` is taken modulo 2^32.
    Degradations call ``image_rng(seed, image_id, salt)``, preprocessors
    ``image_rng(seed, name, image_id)``.
    """
    words = [int(seed) & 0xFFFFFFFF]
    words += [zlib.crc32(k.encode("utf-8")) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(words)
