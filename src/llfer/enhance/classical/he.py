"""Global histogram equalisation (OpenCV ``equalizeHist``, batched)."""

from __future__ import annotations

import cv2
import numpy as np

from ...registry import ENHANCERS
from ..base import Enhancer
from .common import check_images, map_value_per_image


@ENHANCERS.register("he")
class HistogramEqualization(Enhancer):
    """Global histogram equalisation per image (gray, or the HSV V channel of RGB).

    ``cv2.equalizeHist`` on each image: with the cumulative histogram ``cdf``
    of the image's 256 levels and ``cdf_min`` its first non-zero value,
    ``v -> round(255 * (cdf(v) - cdf_min) / (n_pixels - cdf_min))``, so the
    darkest level present maps to 0 and the brightest to 255.  A constant image
    is returned unchanged.  tests/test_classical.py checks it bit for bit
    against an independent NumPy implementation of that formula.
    """

    name = "he"

    def __init__(self):
        pass

    def enhance(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        if len(images) == 0:
            return images.copy()
        return map_value_per_image(images, cv2.equalizeHist)
