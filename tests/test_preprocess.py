"""Preprocessors: known values, noise statistics, determinism, shapes and dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from llfer.errors import ConfigError, LlferError
from llfer.preprocess import apply_preprocessors, gcn_float, sobel
from llfer.registry import PREPROCESSORS, import_all

import_all()
NAMES = PREPROCESSORS.names()  # every preprocessor (descriptions etc.: tests/test_registries.py)


def _rand(n=4, h=24, w=20, c=None, seed=0):
    shape = (n, h, w) if c is None else (n, h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _ids(n):
    return [f"img{i:03d}" for i in range(n)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rgb", [False, True])
def test_shapes_dtypes(name, rgb):
    x = _rand(c=3 if rgb else None)
    out = apply_preprocessors([name], x, ids=_ids(4), train=True, seed=0)
    assert out.dtype == np.uint8
    if name == "sobel3":
        assert out.shape == x.shape[:3] + (3,)
    else:
        assert out.shape == x.shape


def test_unknown_name_and_option():
    x = _rand()
    with pytest.raises(ConfigError, match="allowed: .*gcn.*sobel3"):
        apply_preprocessors(["he", "nope"], x, ids=_ids(4), train=False, seed=0)
    with pytest.raises(ConfigError, match="unknown parameter 'lambda'"):
        apply_preprocessors(["gcn"], x, ids=_ids(4), train=False, seed=0, params={"gcn": {"lambda": 1}})
    with pytest.raises(LlferError):
        apply_preprocessors(["he"], x.astype(np.float32), ids=_ids(4), train=False, seed=0)
    with pytest.raises(LlferError):
        apply_preprocessors(["he"], x, ids=_ids(3), train=False, seed=0)


# ------------------------------------------------------------------- HE --
def test_he_flattens_histogram():
    # a low-contrast image: values 100..131 only, uniform-ish
    x = (100 + _rand(1, 64, 64) % 32).astype(np.uint8)
    out = apply_preprocessors(["he"], x, ids=["a"], train=False, seed=0)
    assert out.min() == 0 and out.max() == 255
    # equalised cdf close to the identity line
    cdf = np.cumsum(np.bincount(out.ravel(), minlength=256)) / out.size
    assert np.abs(cdf - (np.arange(256) + 1) / 256).max() < 0.05
    # monotone mapping: order of pixel values preserved
    o = np.argsort(x.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[o].astype(int)) >= 0)


def test_he_constant_image_unchanged():
    x = np.full((1, 8, 8), 60, np.uint8)
    assert np.array_equal(apply_preprocessors(["he"], x, ids=["a"], train=False, seed=0), x)


# ------------------------------------------------------------------ GCN --
def test_gcn_constant_image():
    x = np.full((2, 10, 10), 200, np.uint8)
    assert np.allclose(gcn_float(x), 0.0)
    out = apply_preprocessors(["gcn"], x, ids=["a", "b"], train=False, seed=0)
    assert np.all(out == 128)


def test_gcn_known_values():
    x = np.zeros((1, 2, 2), np.uint8)
    x[0, 0] = 100  # half 100, half 0: mean 50, mean sq dev 2500
    xp = gcn_float(x)
    expect = 50.0 / np.sqrt(10.0 + 2500.0)
    assert np.allclose(xp[0, 0], expect) and np.allclose(xp[0, 1], -expect)
    out = apply_preprocessors(["gcn"], x, ids=["a"], train=False, seed=0)
    assert out[0, 0, 0] == int(np.rint(127.5 + 127.5 * expect / 3.0))
    assert out[0, 1, 0] == int(np.rint(127.5 - 127.5 * expect / 3.0))
    # s scales, span is the clipping point; big s saturates
    out2 = apply_preprocessors(["gcn"], x, ids=["a"], train=False, seed=0,
                               params={"gcn": {"s": 10.0}})
    assert out2[0, 0, 0] == 255 and out2[0, 1, 0] == 0


def test_gcn_invariant_to_brightness_and_contrast_shift():
    x = (_rand(1, 32, 32) // 4).astype(np.uint8)  # 0..63
    a = apply_preprocessors(["gcn"], x, ids=["a"], train=False, seed=0, params={"gcn": {"lam": 0.0}})
    b = apply_preprocessors(["gcn"], (x * 2 + 50).astype(np.uint8), ids=["a"], train=False, seed=0,
                            params={"gcn": {"lam": 0.0}})
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_gcn_he_is_he_of_gcn():
    x = _rand(3)
    ids = _ids(3)
    a = apply_preprocessors(["gcn_he"], x, ids=ids, train=False, seed=0)
    b = apply_preprocessors(["gcn", "he"], x, ids=ids, train=False, seed=0)
    assert np.array_equal(a, b)


# ------------------------------------------------------ salt and pepper --
def test_salt_pepper_rate():
    x = np.full((8, 64, 64), 128, np.uint8)
    out = apply_preprocessors(["salt_pepper"], x, ids=_ids(8), train=True, seed=3,
                              params={"salt_pepper": {"rate": 0.1}})
    changed = out != 128
    assert abs(changed.mean() - 0.1) < 0.01
    assert set(np.unique(out[changed])) <= {0, 255}
    salt = (out == 255).sum() / changed.sum()
    assert abs(salt - 0.5) < 0.05


def test_salt_pepper_identity_at_test_time():
    x = _rand(4)
    out = apply_preprocessors(["salt_pepper"], x, ids=_ids(4), train=False, seed=0)
    assert np.array_equal(out, x)


def test_salt_pepper_deterministic_per_id_not_batch_order():
    x = _rand(6)
    ids = _ids(6)
    a = apply_preprocessors(["salt_pepper"], x, ids=ids, train=True, seed=7)
    perm = np.array([5, 2, 0, 4, 1, 3])
    b = apply_preprocessors(["salt_pepper"], x[perm], ids=[ids[i] for i in perm], train=True, seed=7)
    assert np.array_equal(a[perm], b)
    # alone in a batch: the same noise
    c = apply_preprocessors(["salt_pepper"], x[2:3], ids=ids[2:3], train=True, seed=7)
    assert np.array_equal(a[2:3], c)
    # a different seed or id changes it
    d = apply_preprocessors(["salt_pepper"], x, ids=ids, train=True, seed=8)
    assert not np.array_equal(a, d)
    e = apply_preprocessors(["salt_pepper"], x[:1], ids=["other"], train=True, seed=7)
    assert not np.array_equal(a[:1], e)


def test_salt_pepper_rgb_whole_pixel():
    x = np.full((2, 32, 32, 3), 100, np.uint8)
    out = apply_preprocessors(["salt_pepper"], x, ids=["a", "b"], train=True, seed=0,
                              params={"salt_pepper": {"rate": 0.2}})
    hit = (out != 100).any(-1)
    assert np.array_equal(hit, (out != 100).all(-1))
    assert 0.1 < hit.mean() < 0.3


# ---------------------------------------------------------------- Sobel --
def test_sobel_kernels_on_ramps():
    ramp_x = np.tile(np.arange(0, 40, 2, dtype=np.uint8), (1, 12, 1))  # I = 2 x
    gx, gy = sobel(ramp_x)
    assert np.allclose(gx[:, 1:-1, 1:-1], 8 * 2)  # (1 + 2 + 1) * (2 * slope)
    assert np.allclose(gy, 0)
    ramp_y = np.transpose(ramp_x, (0, 2, 1)).copy()  # I = 2 y
    gx, gy = sobel(ramp_y)
    assert np.allclose(gy[:, 1:-1, 1:-1], 16)
    assert np.allclose(gx, 0)


def test_sobel3_channels_on_ramp():
    ramp = np.tile(np.arange(0, 40, 2, dtype=np.uint8), (2, 12, 1))
    out = apply_preprocessors(["sobel3"], ramp, ids=["a", "b"], train=False, seed=0)
    assert np.array_equal(out[..., 0], ramp)
    assert np.all(out[:, 1:-1, 1:-1, 1] == 128 + 4 * 16 // 8)  # default gain 4
    assert np.all(out[..., 2] == 128)
    absm = apply_preprocessors(["sobel3"], ramp[:, :, ::-1].copy(), ids=["a", "b"], train=False, seed=0,
                               params={"sobel3": {"mode": "abs", "gain": 1.0}})
    assert np.all(absm[:, 1:-1, 1:-1, 1] == 4)  # |G| / 4 with G = -16
    assert np.all(absm[..., 2] == 0)


def test_sobel3_full_range_fits_at_gain_1():
    step = np.zeros((1, 5, 6), np.uint8)
    step[:, :, 3:] = 255  # strongest possible horizontal gradient: 4 * 255 = 1020
    out = apply_preprocessors(["sobel3"], step, ids=["a"], train=False, seed=0,
                              params={"sobel3": {"gain": 1.0}})
    assert out[0, 2, 2, 1] == 255 and out[0, 2, 3, 1] == 255
    inv = apply_preprocessors(["sobel3"], 255 - step, ids=["a"], train=False, seed=0,
                              params={"sobel3": {"gain": 1.0}})
    assert inv[0, 2, 2, 1] == 0


def test_sobel3_rgb_converts_to_gray():
    x = _rand(2, 10, 10, c=3)
    out = apply_preprocessors(["sobel3"], x, ids=["a", "b"], train=False, seed=0)
    y = np.rint(x.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    assert np.abs(out[..., 0].astype(int) - y.astype(int)).max() <= 1


def test_chain_order_matters():
    x = _rand(2)
    a = apply_preprocessors(["he", "salt_pepper"], x, ids=["a", "b"], train=True, seed=0)
    b = apply_preprocessors(["salt_pepper", "he"], x, ids=["a", "b"], train=True, seed=0)
    assert a.dtype == b.dtype == np.uint8
    assert not np.array_equal(a, b)
