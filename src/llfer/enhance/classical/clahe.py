"""Contrast-limited adaptive histogram equalisation (OpenCV ``createCLAHE``, batched)."""

from __future__ import annotations

import cv2
import numpy as np

from ...errors import LlferError
from ...registry import ENHANCERS
from ..base import Enhancer
from .common import check_images, map_value_per_image


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
    """Contrast-limited adaptive histogram equalisation (OpenCV's, per image).

    ``cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(cols, rows)).apply``
    on each image, ``chunk`` images at a time; ``tiles`` = (rows, cols):

    - the image is split into rows x cols tiles; when a side is not a multiple
      of its grid, both sides are first padded at the bottom/right by
      ``tiles - size % tiles`` (so a side that divides gains a whole tile, as
      OpenCV does) by reflection (BORDER_REFLECT_101), for the tile histograms only;
    - each tile's 256-bin histogram is clipped at
      ``max(1, int(clip_limit * tile_pixels / 256))`` counts (``clip_limit`` is a
      multiple of the mean bin height; <= 0 disables clipping); the clipped
      excess is spread evenly over the bins, its remainder one count at a time
      at a regular stride;
    - each tile's look-up table is ``round(cdf * 255 / tile_pixels)``, and every
      pixel is mapped by bilinear interpolation between the four nearest tile
      centres (clamped at the borders).

    tests/test_classical.py checks it bit for bit against an independent NumPy
    implementation of those steps for several grids and clips (including grids
    that do not divide 48).

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
        images = check_images(images)
        if len(images) == 0:
            return images.copy()
        h, w = images.shape[1:3]
        ty, tx = self.tiles
        if (ty - h % ty if h % ty else 0) >= h or (tx - w % tx if w % tx else 0) >= w:
            raise LlferError(f"clahe: image {h}x{w} is too small for a {ty}x{tx} tile grid")
        clahe = cv2.createCLAHE(clipLimit=max(self.clip_limit, 0.0), tileGridSize=(tx, ty))
        return map_value_per_image(images, clahe.apply, self.chunk)
