"""Shared enhancer losses against reference implementations."""

from __future__ import annotations

import colorsys
import logging

import numpy as np
import pytest
import torch

from llfer.enhance import losses as L

torch.set_num_threads(1)


def test_charbonnier():
    x, y = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert L.charbonnier(x, y).item() == pytest.approx(np.sqrt(0.25 + 1e-6))
    assert L.charbonnier(x, x).item() == pytest.approx(1e-3)


def test_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((32, 32))
    b = np.clip(a + 0.1 * rng.standard_normal((32, 32)), 0, 1)
    ref = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    ta = torch.from_numpy(a).float()[None, None]
    tb = torch.from_numpy(b).float()[None, None]
    # skimage averages over the image with 'valid' cropping of (win - 1) / 2 = 5 pixels
    assert L.gaussian_ssim(ta, tb).item() == pytest.approx(ref, abs=2e-3)
    assert L.ssim_loss(ta, ta).item() == pytest.approx(0.0, abs=1e-5)
    x = ta.clone().requires_grad_(True)
    L.ssim_loss(x, tb).backward()
    assert torch.isfinite(x.grad).all()
    assert L.gaussian_ssim(torch.rand(1, 3, 6, 5), torch.rand(1, 3, 6, 5)).shape == ()


def test_hsv_matches_colorsys():
    rng = np.random.default_rng(1)
    px = rng.random((50, 3))
    px[0] = [0.3, 0.3, 0.3]  # grey: hue 0
    t = torch.from_numpy(px).float().T.reshape(1, 3, 5, 10)
    hsv = L.rgb_to_hsv(t).reshape(3, 50).T.numpy()
    ref = np.array([colorsys.rgb_to_hsv(*p) for p in px])
    np.testing.assert_allclose(hsv, ref, atol=1e-4)


def test_hsi_known_values():
    t = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0.5]]).T.reshape(1, 3, 2, 2)
    hsi = L.rgb_to_hsi(t).reshape(3, 4).T
    np.testing.assert_allclose(hsi[:3, 0].numpy(), [0, 1 / 3, 2 / 3], atol=1e-3)  # red, green, blue hues
    np.testing.assert_allclose(hsi[:3, 1].numpy(), [1, 1, 1], atol=1e-4)
    np.testing.assert_allclose(hsi[:, 2].numpy(), [1 / 3, 1 / 3, 1 / 3, 0.5], atol=1e-6)
    assert hsi[3, 1].item() == pytest.approx(0.0, abs=1e-4)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    L.color_space_loss(x, torch.rand(2, 3, 8, 8)).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("shape", [(8, 8), (5, 7)])
def test_haar_matches_pywt(shape):
    pywt = pytest.importorskip("pywt")
    a = np.random.default_rng(2).random(shape)
    ref = pywt.dwt2(a, "haar")
    ours = L.haar_dwt(torch.from_numpy(a)[None, None])
    for r, o in zip([ref[0], *ref[1]], ours):
        np.testing.assert_allclose(o[0, 0].numpy(), r, atol=1e-10)


def test_wavelet_loss_ignores_low_frequency():
    x = torch.rand(1, 3, 8, 8)
    assert L.wavelet_highfreq_loss(x, x + 0.3).item() == pytest.approx(0.0, abs=1e-6)
    assert L.wavelet_highfreq_loss(x, torch.rand(1, 3, 8, 8)).item() > 0
    with pytest.raises(Exception):
        L.wavelet_highfreq_loss(x, x, bands="q")


def test_vgg_perceptual_offline_random_is_fixed(caplog, tmp_path):
    with caplog.at_level(logging.INFO, logger="llfer"):
        p1 = L.VGGPerceptual("vgg16", "relu1_2", weights=None)
    assert "random" in p1.source
    p2 = L.VGGPerceptual("vgg16", "relu1_2", weights=None)
    for a, b in zip(p1.parameters(), p2.parameters()):
        assert torch.equal(a, b) and not a.requires_grad
    x, y = torch.rand(1, 3, 16, 16, requires_grad=True), torch.rand(1, 3, 16, 16)
    loss = p1(x, y)
    loss.backward()
    assert loss.item() > 0 and x.grad.abs().sum() > 0
    assert p1(y, y).item() == 0
    # from a local file (safetensors and .pth)
    from safetensors.torch import save_file

    state = {f"features.{k}": v.clone() + 1 for k, v in p1.features.state_dict().items()}
    save_file(state, str(tmp_path / "vgg.safetensors"))
    torch.save(state, tmp_path / "vgg.pth")
    for f in ("vgg.safetensors", "vgg.pth"):
        p3 = L.VGGPerceptual("vgg16", "relu1_2", weights=str(tmp_path / f))
        assert torch.equal(p3.features[0].weight, p1.features[0].weight + 1)
    with pytest.raises(Exception):
        L.VGGPerceptual("vgg16", "relu1_2", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(Exception):
        L.VGGPerceptual("vgg16", "relu9_9")


def test_vgg_perceptual_imagenet_falls_back_offline(monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.VGG16_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    p = L.VGGPerceptual("vgg16", "relu1_2", weights="imagenet")
    assert "random" in p.source
    assert torch.equal(p.features[0].weight, L.VGGPerceptual("vgg16", "relu1_2").features[0].weight)
