"""Global gain to a target mean brightness."""

from __future__ import annotations

import numpy as np

from ...errors import LlferError
from ...registry import ENHANCERS
from ..base import Enhancer
from .common import apply_value, check_images, value_channel


@ENHANCERS.register("gain")
class GlobalGain(Enhancer):
    """Global gain: scale each image so its mean brightness reaches a target, then clip.

    ``target_mean`` is a fraction of 255 (default 0.5, i.e. 127.5; the clean
    FER2013 faces average about 0.5 too).  The gain of an image is
    ``target_mean * 255 / mean(I)`` (I the gray image or the HSV V channel of RGB,
    whose H and S are kept), capped at ``max_gain`` when given; values are then
    clipped to 0..255, so images that saturate end up slightly below the target.
    An all-black image is returned unchanged.  This is the natural baseline
    for PIL-style darkening, which is a pure gain ([mirnet-fer]).
    """

    name = "gain"

    def __init__(self, target_mean: float = 0.5, max_gain: float | None = None):
        if not 0.0 < float(target_mean) <= 1.0:
            raise LlferError(f"gain.target_mean must be in (0, 1] (a fraction of 255), got {target_mean!r}")
        self.target_mean = float(target_mean)
        self.max_gain = None if max_gain is None else float(max_gain)

    def enhance(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        if len(images) == 0:
            return images.copy()
        v = value_channel(images).astype(np.float32)
        mean = v.reshape(len(v), -1).mean(axis=1)
        gain = np.divide(self.target_mean * 255.0, mean, out=np.ones_like(mean), where=mean > 0)
        if self.max_gain is not None:
            gain = np.minimum(gain, self.max_gain)
        return apply_value(images, v * gain[:, None, None])
