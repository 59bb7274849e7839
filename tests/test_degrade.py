import numpy as np
import pytest
from PIL import Image, ImageEnhance

from llfer.degrade import apply_steps, dark_gamma, dark_pil, expand_variants, lowres, noise
from llfer.errors import ConfigError


def test_dark_pil_matches_pillow_on_all_levels():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for f in (0.1, 0.25, 0.5, 0.9):
        ref = np.asarray(ImageEnhance.Brightness(Image.fromarray(levels)).enhance(f))
        np.testing.assert_array_equal(dark_pil(levels[None], factor=f)[0], ref)
    rgb = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    ref = np.asarray(ImageEnhance.Brightness(Image.fromarray(rgb)).enhance(0.1))
    np.testing.assert_array_equal(dark_pil(rgb[None], factor=0.1)[0], ref)
    assert len(np.unique(dark_pil(levels[None], factor=0.1))) == 26


def test_dark_gamma_formula_and_per_image_determinism():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)
    ids = [f"id{i}" for i in range(6)]
    a = dark_gamma(imgs, ids=ids, seed=3)
    # Same image id -> same output, whatever the batch it comes in.
    b = dark_gamma(imgs[[4, 2]], ids=[ids[4], ids[2]], seed=3)
    np.testing.assert_array_equal(a[[4, 2]], b)
    assert not np.array_equal(dark_gamma(imgs, ids=ids, seed=4), a)
    # Degenerate ranges give the exact formula beta * (alpha * I) ** gamma.
    c = dark_gamma(imgs, ids=ids, alpha=[0.9, 0.9], beta=[0.5, 0.5], gamma=[2.0, 2.0])
    ref = np.rint(255 * 0.5 * (0.9 * imgs / 255.0) ** 2.0).astype(np.uint8)
    np.testing.assert_array_equal(c, ref)
    assert a.mean() < imgs.mean()
    with pytest.raises(ConfigError, match="alpha"):
        dark_gamma(imgs, ids=ids, alpha=[1.0, 0.5])


def test_noise_statistics_and_determinism():
    imgs = np.full((4, 64, 64), 128, np.uint8)
    ids = list("abcd")
    y = noise(imgs, ids=ids, seed=0, shot=0.01, read=0.01)
    x = 128 / 255
    std = (y / 255.0).std(axis=(1, 2))
    assert np.allclose(std, np.sqrt(0.01 * x + 0.01**2), rtol=0.15)
    np.testing.assert_array_equal(noise(imgs[[1]], ids=["b"], seed=0, shot=0.01, read=0.01), y[[1]])


def test_lowres_sizes_and_box_filter():
    imgs = np.zeros((2, 4, 4), np.uint8)
    imgs[:, :2, :2] = 200
    out = lowres(imgs, size=2, interpolation="area")
    assert out.shape == (2, 2, 2)
    assert out[0, 0, 0] == 200 and out[0, 1, 1] == 0
    with pytest.raises(ConfigError, match="interpolation"):
        lowres(imgs, size=2, interpolation="cubic-ish")


def test_expand_variants_names_and_combos():
    cfg = {"dark_pil": {"factors": [0.1, 0.2]}, "dark_gamma": {"alpha": [0.9, 1], "beta": [0.5, 1], "gamma": [1.5, 5]},
           "lowres": {"sizes": [10, 5], "interpolation": "area"}, "noise": {"shot": 0.01, "read": 0.0},
           "combos": {"dark_low": ["dark_pil_10", "lowres_10"], "dg_noise": ["dark_gamma", "noise"]}}
    v = expand_variants(cfg)
    assert list(v) == ["dark_pil_10", "dark_pil_20", "dark_gamma", "lowres_10", "lowres_5", "dark_low", "dg_noise"]
    assert [s.type for s in v["dark_low"]] == ["dark_pil", "lowres"]
    assert list(expand_variants({"dark_pil": {"factors": [0.1]}})) == ["dark_pil"]
    with pytest.raises(ConfigError, match="combos.bad: unknown part 'nope'"):
        expand_variants({"dark_pil": {"factors": [0.1]}, "combos": {"bad": ["nope"]}})
    imgs = np.full((2, 20, 20), 100, np.uint8)
    out = apply_steps(imgs, ["a", "b"], v["dark_low"], seed=0)
    assert out.shape == (2, 10, 10) and out.max() == 10
