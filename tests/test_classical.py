"""Classical enhancers: paper formulas, shapes/dtypes, determinism, OpenCV HE/CLAHE vs an independent NumPy version."""

from __future__ import annotations

import math

import numpy as np
import pytest

import numpy_he_clahe as ref
from llfer.enhance.classical.agc import AdaptiveGammaCorrection
from llfer.enhance.classical.clahe import CLAHE
from llfer.enhance.classical.common import apply_value
from llfer.enhance.classical.gain import GlobalGain
from llfer.enhance.classical.he import HistogramEqualization
from llfer.enhance.classical.retinex import AutomatedMSRCR
from llfer.errors import LlferError
from llfer.registry import ENHANCERS, import_all

import_all()
NAMES = [n for n in ENHANCERS.names() if not ENHANCERS.get(n).learned]  # every classical enhancer


def faces(n=6, h=48, w=48, seed=0, scale=0.25):
    """Smooth face-like dark uint8 images (deterministic)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((n, h, w)), (0, 3, 3))
    base = (base - base.min(axis=(1, 2), keepdims=True)) / np.ptp(base, axis=(1, 2), keepdims=True)
    noise = rng.normal(0, 0.03, (n, h, w))
    return np.clip((base * 0.8 + 0.1 + noise) * 255 * scale, 0, 255).astype(np.uint8)


def rgb_faces(n=4, seed=1):
    g = faces(n, seed=seed).astype(np.float32)
    tint = np.array([1.0, 0.8, 0.6], np.float32)
    return np.clip(g[..., None] * tint, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- registry / interface
@pytest.mark.parametrize("name", NAMES)
def test_registered_with_description_and_defaults(name):
    entry = ENHANCERS.entry(name)
    assert entry.obj.name == name
    assert entry.description
    assert not entry.obj.learned
    ENHANCERS.build(name)  # all params have defaults


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_shape_dtype_determinism_batch_independence(name, kind):
    x = faces() if kind == "gray" else rgb_faces()
    e = ENHANCERS.build(name)
    y = e.enhance(x)
    assert y.dtype == np.uint8 and y.shape == x.shape
    np.testing.assert_array_equal(y, ENHANCERS.build(name).enhance(x))
    # per-image methods: the result does not depend on the batch
    np.testing.assert_array_equal(y[1:2], e.enhance(x[1:2]))
    assert e.enhance(x[:0]).shape == x[:0].shape


@pytest.mark.parametrize("name", NAMES)
def test_rejects_bad_input(name):
    e = ENHANCERS.build(name)
    with pytest.raises(LlferError):
        e.enhance(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(LlferError):
        e.enhance(np.zeros((2, 8, 8, 4), np.uint8))


def test_identity_returns_copy():
    x = faces(2)
    y = ENHANCERS.build("identity").enhance(x)
    np.testing.assert_array_equal(x, y)
    assert y is not x


# ----------------------------------------------------------------------------- HE
def test_he_formula_small_image():
    # levels 10 (x2), 20 (x1), 30 (x1): cdf 2, 3, 4; cdf_min 2 -> 0, 255*1/2, 255
    x = np.array([[[10, 10], [20, 30]]], np.uint8)
    y = HistogramEqualization().enhance(x)
    np.testing.assert_array_equal(y, [[[0, 0], [128, 255]]])


def test_he_rounds_a_half_tie_as_opencv():
    # 284 / 1414 / 606 pixels at levels 0 / 1 / 2: level 1 -> 255 * 1414 / 2020 = 178.5 exactly;
    # OpenCV's float32 product rounds it up (float64 round-half-even would give 178)
    x = np.repeat(np.array([0, 1, 2], np.uint8), [284, 1414, 606]).reshape(1, 48, 48)
    y = HistogramEqualization().enhance(x)
    assert (y[x == 1] == 179).all() and (y[x == 2] == 255).all()
    np.testing.assert_array_equal(y, ref.equalize(x))


def test_he_flattens_histogram_and_constant_unchanged():
    x = faces(3, scale=0.2)
    y = HistogramEqualization().enhance(x)
    for img in y:
        # cdf of the output is close to the identity line (flat histogram)
        cdf = np.cumsum(np.bincount(img.ravel(), minlength=256)) / img.size
        assert np.abs(cdf - (np.arange(256) + 1) / 256).max() < 0.08
        assert img.min() == 0 and img.max() == 255
    c = np.full((1, 5, 5), 17, np.uint8)
    np.testing.assert_array_equal(HistogramEqualization().enhance(c), c)


def test_he_rgb_keeps_hue():
    x = rgb_faces(2)
    y = HistogramEqualization().enhance(x).astype(float)
    v = y.max(-1)
    m = v > 60
    # the channel ratios (hue, saturation) survive up to rounding
    np.testing.assert_allclose(y[..., 1][m] / v[m], 0.8, atol=0.03)
    np.testing.assert_allclose(y[..., 2][m] / v[m], 0.6, atol=0.03)


# ----------------------------------------------------------------------------- CLAHE
def test_clahe_single_tile_no_clip_is_global_cdf_mapping():
    x = faces(2)
    y = CLAHE(clip_limit=0, tiles=1).enhance(x)
    for img, out in zip(x, y):
        cdf = np.cumsum(np.bincount(img.ravel(), minlength=256))
        np.testing.assert_array_equal(out, np.rint(cdf * np.float32(255 / img.size)).astype(np.uint8)[img])


def test_clahe_tile_grids_on_48px_faces():
    x = faces(3)
    for tiles in [(8, 8), (7, 7), (5, 3), [3, 3]]:
        y = ENHANCERS.build("clahe", tiles=tiles, clip_limit=3.0).enhance(x)
        assert y.shape == x.shape and y.std() > x.std()
    with pytest.raises(LlferError):
        CLAHE(tiles=0)
    with pytest.raises(LlferError):
        CLAHE(tiles=(100, 100)).enhance(x)  # more tiles than pixels: padding larger than image


def test_he_and_clahe_opencv_match_numpy_reference():
    """The OpenCV enhancers equal the NumPy re-implementation (llfer's own code before OpenCV) bit for bit."""
    x = faces(4, scale=0.3)
    x[3] = 17  # a constant image
    np.testing.assert_array_equal(HistogramEqualization().enhance(x), ref.equalize(x))
    for tiles, clip in [((8, 8), 2.0), ((7, 7), 4.0), ((3, 3), 40.0), ((4, 4), 2.0), ((5, 3), 3.0), ((7, 4), 2.0), ((1, 1), 0.0)]:
        np.testing.assert_array_equal(CLAHE(clip, tiles).enhance(x), ref.clahe(x, clip, tiles))
    rect = faces(2, h=40, w=54, scale=0.3)
    np.testing.assert_array_equal(CLAHE(2.0, (5, 4)).enhance(rect), ref.clahe(rect, 2.0, (5, 4)))
    # colour: the reference's V channel put back the same way; batches split into chunks change nothing
    xr = rgb_faces(3)
    v = xr.max(-1)
    np.testing.assert_array_equal(HistogramEqualization().enhance(xr), apply_value(xr, ref.equalize(v).astype(np.float32)))
    np.testing.assert_array_equal(CLAHE(2.0, (4, 4), chunk=2).enhance(xr),
                                  apply_value(xr, ref.clahe(v, 2.0, (4, 4)).astype(np.float32)))


# ----------------------------------------------------------------------------- AGC
def _two_level(a, b, shape=(8, 8)):
    img = np.full(shape, a, np.uint8)
    img[: shape[0] // 2] = b
    return img[None]


def test_agc_low_contrast_dark_matches_paper():
    x = _two_level(40, 60)  # mu = 50/255 (dark), sigma = 10/255: 4 sigma = 0.157 <= 1/3 -> low contrast
    mu, sigma = 50 / 255, 10 / 255
    g = -math.log2(sigma)
    gamma, m, s = AdaptiveGammaCorrection().gammas(x)
    assert gamma[0] == pytest.approx(g) and m[0] == pytest.approx(mu) and s[0] == pytest.approx(sigma)

    def f(i):
        ig = (i / 255) ** g
        return 255 * ig / (ig + (1 - ig) * mu**g)

    y = AdaptiveGammaCorrection().enhance(x)
    assert set(np.unique(y)) == {round(f(40)), round(f(60))}
    assert y[0, -1, 0] == round(f(40)) and y[0, 0, 0] == round(f(60))


def test_agc_high_contrast_bright_is_plain_gamma():
    x = _two_level(round(0.3 * 255), round(0.9 * 255))  # mu ~ 0.6 (bright), 4 sigma ~ 1.2 > 1/3
    v = x[0].astype(float) / 255
    mu, sigma = v.mean(), v.std()
    g = math.exp((1 - (mu + sigma)) / 2)
    y = AdaptiveGammaCorrection().enhance(x)
    np.testing.assert_array_equal(y[0], np.rint(255 * v**g).astype(np.uint8))


def test_agc_high_contrast_dark_and_constant():
    x = _two_level(0, 200)  # mu = 100/255 < 0.5, sigma = 100/255: high contrast, dark
    v = x[0].astype(float) / 255
    mu, sigma = v.mean(), v.std()
    g = math.exp((1 - (mu + sigma)) / 2)
    ig = v**g
    exp = 255 * ig / (ig + (1 - ig) * mu**g)
    np.testing.assert_array_equal(AdaptiveGammaCorrection().enhance(x)[0], np.rint(exp).astype(np.uint8))
    c = np.full((2, 6, 6), 30, np.uint8)
    np.testing.assert_array_equal(AdaptiveGammaCorrection().enhance(c), c)


def test_agc_brightens_dark_faces_and_keeps_hue():
    x = faces(4, scale=0.15)
    assert AdaptiveGammaCorrection().enhance(x).mean() > 2 * x.mean()
    xr = rgb_faces(2)
    y = AdaptiveGammaCorrection().enhance(xr).astype(float)
    v = y.max(-1)
    m = v > 60
    np.testing.assert_allclose(y[..., 2][m] / v[m], 0.6, atol=0.03)


# ----------------------------------------------------------------------------- Retinex
def test_retinex_spans_full_range():
    x = faces(5, scale=0.1)
    y = AutomatedMSRCR().enhance(x)
    assert (y.reshape(5, -1).min(1) == 0).all() and (y.reshape(5, -1).max(1) == 255).all()
    # the automated clipping cut some tail pixels at each end
    assert ((y == 0).sum(axis=(1, 2)) >= 1).all() and ((y == 255).sum(axis=(1, 2)) >= 1).all()


def test_retinex_gray_equals_rgb_of_repeated_gray():
    x = faces(3, scale=0.2)
    g = AutomatedMSRCR().enhance(x)
    rgb = AutomatedMSRCR().enhance(np.repeat(x[..., None], 3, axis=-1))
    assert np.abs(g.astype(int) - rgb[..., 0]).max() <= 1
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])


def test_retinex_msr_formula_and_params():
    x = faces(2, scale=0.3)
    e = ENHANCERS.build("retinex", scales=[5, 20])
    msr = e.msrcr(x)[..., 0]
    from scipy.ndimage import gaussian_filter

    xf = x.astype(np.float64) + 1
    exp = np.mean([np.log(xf) - np.log(gaussian_filter(xf, (0, s, s), mode="mirror", truncate=4.0)) for s in (5, 20)], 0)
    np.testing.assert_allclose(msr, exp, atol=1e-4)
    c = np.full((1, 10, 10), 9, np.uint8)
    np.testing.assert_array_equal(e.enhance(c), c)  # constant image: unchanged
    with pytest.raises(LlferError):
        AutomatedMSRCR(scales=())


def test_retinex_colour_restoration_formula():
    x = rgb_faces(1)
    e = AutomatedMSRCR(scales=(10,))
    out = e.msrcr(x)
    xf = x.astype(np.float64) + 1
    from scipy.ndimage import gaussian_filter

    msr = np.log(xf) - np.log(gaussian_filter(xf, (0, 10, 10, 0), mode="mirror", truncate=4.0))
    cr = 46 * (np.log(125 * xf) - np.log(xf.sum(-1, keepdims=True)))
    np.testing.assert_allclose(out, msr * cr, rtol=1e-4, atol=1e-3)


# ----------------------------------------------------------------------------- gain
def test_gain_reaches_target_mean():
    x = faces(4, scale=0.3)  # max ~ 77, mean ~ 35: gain ~ 3.6, no saturation
    y = GlobalGain(target_mean=0.5).enhance(x)
    np.testing.assert_allclose(y.reshape(4, -1).mean(1), 127.5, atol=0.5)
    y = GlobalGain(target_mean=0.4, max_gain=2.0).enhance(x)
    np.testing.assert_allclose(y.astype(float), np.rint(x * 2.0), atol=0)
    z = np.zeros((1, 4, 4), np.uint8)
    np.testing.assert_array_equal(GlobalGain().enhance(z), z)
    with pytest.raises(LlferError):
        GlobalGain(target_mean=2)


def test_gain_inverts_pil_darkening_mostly():
    clean = faces(3, scale=1.0)
    dark = np.floor(clean * 0.1).astype(np.uint8)
    y = GlobalGain(target_mean=clean.mean() / 255).enhance(dark)
    err = np.abs(y.astype(float) - clean).mean()
    assert err < 12 and err < 0.15 * np.abs(dark.astype(float) - clean).mean()
