"""Quality metrics: PSNR/SSIM parity with scikit-image, NIQE against BasicSR (fixed values + live parity)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from llfer.errors import LlferError
from llfer.metrics import quality as Q

REPO = Path(__file__).resolve().parents[1]


def noisy_pair(shape, seed=0, amp=30):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-amp, amp + 1, shape), 0, 255).astype(np.uint8)
    return x, y


def pattern(h, w, seed, c=None):
    """Deterministic test image (numpy only: stable across library versions)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    shape = (h, w) if c is None else (h, w, c)
    base = 128 + 60 * np.sin(xx / 9.0 + seed) * np.cos(yy / 13.0) + 30 * np.sin((xx + 2 * yy) / 5.0)
    if c is not None:
        base = base[..., None] * np.array([1.0, 0.85, 0.6])[:c]
    return np.clip(base + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- PSNR / SSIM
def test_psnr_ssim_match_skimage_gray():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x, y = noisy_pair((4, 48, 40))
    ref_p = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x, y)]
    ref_s = [structural_similarity(a, b, data_range=255) for a, b in zip(x, y)]
    np.testing.assert_allclose(Q.psnr(x, y), ref_p, atol=1e-4)
    np.testing.assert_allclose(Q.ssim(x, y), ref_s, atol=1e-4)
    # float input on [0, 1]
    xf, yf = x / 255.0, y / 255.0
    np.testing.assert_allclose(Q.ssim(xf, yf, data_range=1.0), ref_s, atol=1e-4)
    np.testing.assert_allclose(Q.psnr(xf, yf, data_range=1.0), ref_p, atol=1e-4)


def test_psnr_ssim_match_skimage_colour_both_layouts():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x, y = noisy_pair((3, 40, 44, 3), seed=1)
    ref_s = [structural_similarity(a, b, data_range=255, channel_axis=-1) for a, b in zip(x, y)]
    ref_p = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x, y)]
    np.testing.assert_allclose(Q.ssim(x, y), ref_s, atol=1e-4)
    np.testing.assert_allclose(Q.psnr(x, y), ref_p, atol=1e-4)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)
    ty = torch.from_numpy(y).permute(0, 3, 1, 2)
    s = Q.ssim(tx, ty)
    assert isinstance(s, torch.Tensor) and s.dtype == torch.float64
    np.testing.assert_allclose(s.numpy(), ref_s, atol=1e-4)
    np.testing.assert_allclose(Q.ssim(x, y, channels_last=True), ref_s, atol=1e-4)


def test_identical_images_and_mean_score():
    x, y = noisy_pair((3, 16, 16))
    p = Q.psnr(x, x)
    assert np.isinf(p).all()
    np.testing.assert_allclose(Q.ssim(x, x), 1.0)
    mixed = Q.psnr(np.concatenate([x, x]), np.concatenate([x, y]))
    assert Q.mean_score(mixed) == pytest.approx(np.mean(np.r_[[100.0] * 3, mixed[3:]]))
    assert np.isfinite(Q.mean_score(mixed, cap=60))
    assert np.isnan(Q.mean_score([]))


def test_psnr_ssim_errors():
    x, y = noisy_pair((2, 16, 16))
    with pytest.raises(LlferError):
        Q.psnr(x, y[:, :8])
    with pytest.raises(LlferError):
        Q.ssim(x[:, :5, :5], y[:, :5, :5])  # smaller than the 7 x 7 window


# ----------------------------------------------------------------------------- NIQE, fixed values
# Computed once with BasicSR 1.4.2 ``calculate_niqe`` (and its ``imresize`` for the x4 upsampling)
# on the ``pattern`` images; see benchmarks/bench_niqe.py for how the reference is run.
NIQE_GRAY_192 = 24.41426632109696  # pattern(192, 192, 1), input_order='HW'
NIQE_FACE_48_X4 = 7.801797333065902  # pattern(48, 48, 2) -> imresize x4, clip -> 'HW'
NIQE_RGB_200x250 = 31.107908843216965  # pattern(200, 250, 3, 3) as BGR, 'HWC', convert_to='y'


def test_niqe_fixed_reference_values():
    a, b, c = pattern(192, 192, 1), pattern(48, 48, 2), pattern(200, 250, 3, 3)
    assert Q.niqe(a[None])[0] == pytest.approx(NIQE_GRAY_192, abs=1e-3)
    assert Q.niqe(b[None])[0] == pytest.approx(NIQE_FACE_48_X4, abs=1e-3)  # upsample chosen automatically: x4
    assert Q.niqe(b[None], upsample=4)[0] == pytest.approx(NIQE_FACE_48_X4, abs=1e-3)
    assert Q.niqe(c[None])[0] == pytest.approx(NIQE_RGB_200x250, abs=1e-3)
    t = Q.niqe(torch.from_numpy(c[None]).permute(0, 3, 1, 2))
    assert isinstance(t, torch.Tensor) and t[0].item() == pytest.approx(NIQE_RGB_200x250, abs=1e-3)


def test_niqe_batch_equals_single():
    faces = np.stack([pattern(48, 48, s) for s in range(2, 6)])
    batch = Q.niqe(faces, chunk=3)
    single = np.array([Q.niqe(f[None])[0] for f in faces])
    np.testing.assert_allclose(batch, single, atol=1e-9)
    assert batch[0] == pytest.approx(NIQE_FACE_48_X4, abs=1e-3)


def test_niqe_errors_and_package_data():
    with pytest.raises(LlferError):
        Q.niqe(pattern(48, 48, 2)[None], upsample=1)  # no 96 x 96 block
    with pytest.raises(LlferError):
        Q.niqe(np.zeros((1, 200, 200, 4), np.uint8))
    assert (Q.DATA_DIR / "niqe_pris_params.npz").exists()
    assert "Apache License" in (Q.DATA_DIR / "NIQE_LICENSE.txt").read_text()


def test_matlab_resize_shapes_and_constants():
    x = np.full((2, 48, 40), 0.25, np.float32)
    up = Q.matlab_resize(x, 4)
    assert up.shape == (2, 192, 160) and up.dtype == np.float32
    np.testing.assert_allclose(up, 0.25, atol=1e-6)
    down = Q.matlab_resize(np.full((1, 97, 131), 0.5, np.float32), 0.5)
    assert down.shape == (1, 49, 66)
    np.testing.assert_allclose(down, 0.5, atol=1e-6)


# ----------------------------------------------------------------------------- NIQE, live parity with BasicSR
def _reference():
    src = os.environ.get("LLFER_BASICSR_SRC", "/tmp/basicsr/basicsr-1.4.2")
    if not (Path(src) / "basicsr" / "metrics" / "niqe.py").exists():
        pytest.skip(f"BasicSR 1.4.2 source not found at {src} (set LLFER_BASICSR_SRC; see benchmarks/bench_niqe.py)")
    spec = importlib.util.spec_from_file_location("_bench_niqe", REPO / "benchmarks" / "bench_niqe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.load_basicsr_niqe(src)


def test_niqe_parity_with_basicsr():
    ref = _reference()
    rng = np.random.default_rng(7)
    from scipy.ndimage import gaussian_filter

    faces = np.clip(gaussian_filter(rng.random((3, 48, 48)), (0, 2, 2)) * 900 - 320 + rng.normal(0, 4, (3, 48, 48)), 0, 255)
    faces = faces.astype(np.uint8)
    ours = Q.niqe(faces, upsample=4)
    want = []
    for f in faces:
        up = np.clip(ref.imresize_matlab(f.astype(np.float32) / 255.0, 4) * 255.0, 0, 255)
        want.append(ref.calculate_niqe(up, 0, input_order="HW"))
    np.testing.assert_allclose(ours, want, atol=1e-3)
    rgb = pattern(210, 200, 9, 3)
    got = Q.niqe(rgb[None])[0]
    assert got == pytest.approx(ref.calculate_niqe(rgb[..., ::-1].astype(np.float32), 0, "HWC", "y"), abs=1e-3)


def test_matlab_resize_bit_identical_to_basicsr():
    ref = _reference()
    rng = np.random.default_rng(3)
    for n, h, w, s in [(3, 48, 48, 4), (2, 192, 192, 0.5), (2, 97, 131, 0.5)]:
        x = (np.round(rng.random((n, h, w)) * 255) / np.float32(255)).astype(np.float32)
        want = np.stack([ref.imresize_matlab(im, s) for im in x])
        np.testing.assert_array_equal(Q.matlab_resize(x, s), want)
