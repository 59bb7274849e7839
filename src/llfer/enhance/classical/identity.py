"""No enhancement: the degraded input itself."""

from __future__ import annotations

import numpy as np

from ...registry import ENHANCERS
from ..base import Enhancer
from .common import check_images


@ENHANCERS.register("identity")
class Identity(Enhancer):
    """No enhancement: returns the input unchanged (the 'raw' row of a table)."""

    name = "identity"

    def enhance(self, images: np.ndarray) -> np.ndarray:
        return check_images(images).copy()
