"""NIQE against BasicSR (fixed reference values + live parity) and the MATLAB-style resize it uses."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from llfer.errors import LlferError
from llfer.metrics.matlab import matlab_resize
from llfer.metrics.niqe import DATA_DIR, niqe

REPO = Path(__file__).resolve().parents[1]


def pattern(h, w, seed, c=None):
    """Deterministic test image (numpy only: stable across library versions)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    shape = (h, w) if c is None else (h, w, c)
    base = 128 + 60 * np.sin(xx / 9.0 + seed) * np.cos(yy / 13.0) + 30 * np.sin((xx + 2 * yy) / 5.0)
    if c is not None:
        base = base[..., None] * np.array([1.0, 0.85, 0.6])[:c]
    return np.clip(base + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- NIQE, fixed values
# Computed once with BasicSR 1.4.2 ``calculate_niqe`` (and its ``imresize`` for the x4 upsampling)
# on the ``pattern`` images; see benchmarks/bench_niqe.py for how the reference is run.
NIQE_GRAY_192 = 24.41426632109696  # pattern(192, 192, 1), input_order='HW'
NIQE_FACE_48_X4 = 7.801797333065902  # pattern(48, 48, 2) -> imresize x4, clip -> 'HW'
NIQE_RGB_200x250 = 31.107908843216965  # pattern(200, 250, 3, 3) as BGR, 'HWC', convert_to='y'


def test_niqe_fixed_reference_values():
    a, b, c = pattern(192, 192, 1), pattern(48, 48, 2), pattern(200, 250, 3, 3)
    assert niqe(a[None])[0] == pytest.approx(NIQE_GRAY_192, abs=1e-3)
    assert niqe(b[None])[0] == pytest.approx(NIQE_FACE_48_X4, abs=1e-3)  # upsample chosen automatically: x4
    assert niqe(b[None], upsample=4)[0] == pytest.approx(NIQE_FACE_48_X4, abs=1e-3)
    assert niqe(c[None])[0] == pytest.approx(NIQE_RGB_200x250, abs=1e-3)
    t = niqe(torch.from_numpy(c[None]).permute(0, 3, 1, 2))
    assert isinstance(t, torch.Tensor) and t[0].item() == pytest.approx(NIQE_RGB_200x250, abs=1e-3)


def test_niqe_batch_equals_single():
    faces = np.stack([pattern(48, 48, s) for s in range(2, 6)])
    batch = niqe(faces, chunk=3)
    single = np.array([niqe(f[None])[0] for f in faces])
    np.testing.assert_allclose(batch, single, atol=1e-9)
    assert batch[0] == pytest.approx(NIQE_FACE_48_X4, abs=1e-3)


def test_niqe_errors_and_package_data():
    with pytest.raises(LlferError):
        niqe(pattern(48, 48, 2)[None], upsample=1)  # no 96 x 96 block
    with pytest.raises(LlferError):
        niqe(np.zeros((1, 200, 200, 4), np.uint8))
    assert (DATA_DIR / "niqe_pris_params.npz").exists()
    assert "Apache License" in (DATA_DIR / "NIQE_LICENSE.txt").read_text()


def test_matlab_resize_shapes_and_constants():
    x = np.full((2, 48, 40), 0.25, np.float32)
    up = matlab_resize(x, 4)
    assert up.shape == (2, 192, 160) and up.dtype == np.float32
    np.testing.assert_allclose(up, 0.25, atol=1e-6)
    down = matlab_resize(np.full((1, 97, 131), 0.5, np.float32), 0.5)
    assert down.shape == (1, 49, 66)
    np.testing.assert_allclose(down, 0.5, atol=1e-6)


# ----------------------------------------------------------------------------- NIQE, live parity with BasicSR
def _reference():
    src = os.environ.get("LLFER_BASICSR_SRC", "")
    if not src or not (Path(src) / "basicsr" / "metrics" / "niqe.py").exists():
        pytest.skip(f"BasicSR 1.4.2 source not found at {src!r} (set LLFER_BASICSR_SRC; see benchmarks/bench_niqe.py)")
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
    ours = niqe(faces, upsample=4)
    want = []
    for f in faces:
        up = np.clip(ref.imresize_matlab(f.astype(np.float32) / 255.0, 4) * 255.0, 0, 255)
        want.append(ref.calculate_niqe(up, 0, input_order="HW"))
    np.testing.assert_allclose(ours, want, atol=1e-3)
    rgb = pattern(210, 200, 9, 3)
    got = niqe(rgb[None])[0]
    assert got == pytest.approx(ref.calculate_niqe(rgb[..., ::-1].astype(np.float32), 0, "HWC", "y"), abs=1e-3)


def test_matlab_resize_bit_identical_to_basicsr():
    ref = _reference()
    rng = np.random.default_rng(3)
    for n, h, w, s in [(3, 48, 48, 4), (2, 192, 192, 0.5), (2, 97, 131, 0.5)]:
        x = (np.round(rng.random((n, h, w)) * 255) / np.float32(255)).astype(np.float32)
        want = np.stack([ref.imresize_matlab(im, s) for im in x])
        np.testing.assert_array_equal(matlab_resize(x, s), want)
