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


# ---------------------------------------------------------------------------- batched implementations
from PIL import Image as _Image  # noqa: E402

from llfer.degrade import _poisson_invert, _poisson_tables, resize_images  # noqa: E402
from llfer.rng import image_rng  # noqa: E402

_PIL_FILTERS = {"area": _Image.Resampling.BOX, "bilinear": _Image.Resampling.BILINEAR,
                "bicubic": _Image.Resampling.BICUBIC, "lanczos": _Image.Resampling.LANCZOS,
                "nearest": _Image.Resampling.NEAREST}


@pytest.mark.parametrize("interpolation", list(_PIL_FILTERS))
def test_resize_is_bit_identical_to_pillow(interpolation):
    rng = np.random.default_rng(1)
    # Smooth-ish faces-like images plus noise, grayscale square and RGB non-square.
    gray = np.clip(rng.normal(128, 60, (4, 48, 48)) + np.linspace(-60, 60, 48), 0, 255).astype(np.uint8)
    rgb = rng.integers(0, 256, (3, 37, 29, 3), dtype=np.uint8)
    for imgs in (gray, rgb):
        for size in (1, 5, 8, 10, 12, 15, 20, 24, 32, 47, 60):
            out = resize_images(imgs, size, interpolation)
            ref = np.stack([np.asarray(_Image.fromarray(im).resize((size, size), _PIL_FILTERS[interpolation]))
                            for im in imgs])
            np.testing.assert_array_equal(out, ref, err_msg=f"{interpolation} {imgs.shape} -> {size}")


def test_resize_batches_do_not_matter():
    imgs = np.random.default_rng(2).integers(0, 256, (11, 48, 48), dtype=np.uint8)
    np.testing.assert_array_equal(resize_images(imgs, 15, chunk=4), resize_images(imgs, 15))


def test_dark_gamma_lookup_equals_pixelwise_formula():
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    ids = [f"Training_{i}" for i in range(7)]
    out = dark_gamma(imgs, ids=ids, seed=5)
    for i, im in enumerate(imgs):
        r = image_rng(5, ids[i], 1)
        a, b, g = r.uniform(0.9, 1.0), r.uniform(0.5, 1.0), r.uniform(1.5, 5.0)
        ref = np.clip(np.rint(b * np.power(a * (im.astype(np.float32) / 255.0), g) * 255.0), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(out[i], ref)  # one curve for the three channels
    with pytest.raises(ValueError, match="one image id per image"):
        dark_gamma(imgs, ids=ids[:3])


@pytest.mark.parametrize("shot", [0.05, 0.01, 0.001, 1 / 2000])
def test_poisson_inversion_is_exact(shot):
    cdf, _, _, width = _poisson_tables(shot)
    cdf = cdf.reshape(256, width)
    rng = np.random.default_rng(4)
    v = rng.integers(0, 256, 10000).astype(np.uint8)
    u = rng.random(10000)
    u[:500] = 1 - rng.random(500) * 1e-12  # far upper tail
    u[500:600] = 0.0
    k = _poisson_invert(v, u, shot)
    np.testing.assert_array_equal(k, (cdf[v] <= u[:, None]).sum(1))  # smallest k with cdf > u
    assert cdf[0, 0] == 1.0 and np.all(cdf[:, -1] == 1.0)


@pytest.mark.parametrize("shot", [0.01, 1e-4])  # table inversion; numpy's sampler for large means
def test_noise_is_poisson_per_level_and_per_image(shot):
    levels = np.array([0, 3, 30, 128, 180], np.uint8)  # well below 255, so clipping does not bias the mean
    imgs = np.repeat(levels[:, None, None], 64, axis=1).repeat(64, axis=2)  # 5 flat 64x64 images
    ids = [f"img{v}" for v in levels]
    y = noise(imgs, ids=ids, seed=1, shot=shot, read=0.0).astype(np.float64) / 255.0
    x = levels / 255.0
    # read = 0: y = shot * Poisson(x / shot), rounded to 1/255 steps
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x, atol=4 * np.sqrt(shot * x.max() / 4096) + 2 / 255)
    sd = y.std(axis=(1, 2))
    assert sd[0] == 0.0
    if shot >= 0.01:
        np.testing.assert_allclose(sd[1:], np.sqrt(shot * x[1:]), rtol=0.1)
    # per image: the same id gives the same noise in any batch
    np.testing.assert_array_equal(noise(imgs[[3, 1]], ids=[ids[3], ids[1]], seed=1, shot=shot, read=0.005),
                                  noise(imgs, ids=ids, seed=1, shot=shot, read=0.005)[[3, 1]])


def test_image_rng_streams_are_the_documented_ones():
    """One helper serves degradations (seed, id, salt) and preprocessors (seed, name, id); the streams stay put."""
    import zlib

    def same(a, b):
        np.testing.assert_array_equal(a.random(5), b.random(5))

    crc = lambda s: zlib.crc32(s.encode("utf-8"))  # noqa: E731
    same(image_rng(5, "img3", 1), np.random.default_rng([5, crc("img3"), 1]))
    same(image_rng(5, "salt_pepper", "img3"), np.random.default_rng([5, crc("salt_pepper"), crc("img3")]))
    same(image_rng(-1, "x"), np.random.default_rng([0xFFFFFFFF, crc("x")]))
    assert image_rng(5, "img3", 1).random() != image_rng(5, "img3", 2).random()
