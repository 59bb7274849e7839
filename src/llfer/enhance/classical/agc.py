"""Adaptive gamma correction (AGC)."""

from __future__ import annotations

import numpy as np

from ...registry import ENHANCERS
from ..base import Enhancer
from .common import apply_lut, apply_value, check_images, value_channel


@ENHANCERS.register("agc")
class AdaptiveGammaCorrection(Enhancer):
    """Adaptive gamma correction (Rahman et al., EURASIP J. Image Video Process. 2016:35).

    On the intensity I in [0, 1] (gray image, or HSV V channel of RGB, whose H
    and S are kept), with mean ``mu`` and standard deviation ``sigma`` of I over
    the image (population std):

    - contrast class (paper Eq. 4): D = (mu + 2 sigma) - (mu - 2 sigma) = 4 sigma;
      *low contrast* when D <= 1/tau (tau = 3), otherwise moderate/high contrast;
    - gamma: low contrast -> gamma = -log2(sigma) (Eq. 7); moderate/high contrast
      -> gamma = exp((1 - (mu + sigma)) / 2) (Eq. 10);
    - brightness class: *dark* when mu < 0.5, else bright;
    - transform (Eqs. 5, 8, 9): I_out = c * I^gamma with
      c = 1 / (1 + H(0.5 - mu) * (k - 1)), k = I^gamma + (1 - I^gamma) * mu^gamma,
      H the Heaviside step; so bright images get c = 1 (plain gamma) and dark
      ones I_out = I^gamma / (I^gamma + (1 - I^gamma) * mu^gamma).

    These are Rahman et al.'s equations as [mirnet-fer] uses them (docs/papers.md); the
    original paper could be consulted only through its abstract here, and nothing in it contradicts
    them.  mu = 0.5 exactly counts as bright (H(0.5 - mu) taken as 0 at 0, as
    "dark when mu < 0.5" says).  Degenerate input: a constant image
    (sigma = 0, gamma = -log2(0) undefined) is returned unchanged.  Each image is
    transformed through its own 256-entry look-up table (batched).
    """

    name = "agc"

    def __init__(self, tau: float = 3.0):
        self.tau = float(tau)

    def gammas(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-image (gamma, mu, sigma) of uint8 intensities N x H x W."""
        x = v.reshape(len(v), -1).astype(np.float64) / 255.0
        mu = x.mean(axis=1)
        sigma = x.std(axis=1)
        low = 4.0 * sigma <= 1.0 / self.tau
        with np.errstate(divide="ignore"):
            g_low = -np.log2(sigma)
        g_high = np.exp((1.0 - (mu + sigma)) / 2.0)
        return np.where(low, g_low, g_high), mu, sigma

    def luts(self, v: np.ndarray) -> np.ndarray:
        """Per-image look-up tables N x 256 (float, 0..255 scale)."""
        gamma, mu, sigma = self.gammas(v)
        levels = np.arange(256, dtype=np.float64)[None, :] / 255.0
        g = gamma[:, None]
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            ig = levels**g
            mg = mu[:, None] ** g
            k = ig + (1.0 - ig) * mg
            dark = (mu < 0.5)[:, None]
            out = np.where(dark, np.divide(ig, k, out=np.zeros_like(ig), where=k > 0), ig)
        lut = out * 255.0
        flat = v.reshape(len(v), -1)
        const = flat.min(axis=1) == flat.max(axis=1)  # sigma = 0 exactly
        if const.any():
            lut[const] = np.arange(256, dtype=np.float64)
        return lut

    def enhance(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        if len(images) == 0:
            return images.copy()
        v = value_channel(images)
        v_new = apply_lut(v, self.luts(v))
        return apply_value(images, v_new)
