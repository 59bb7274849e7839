"""Learned enhancer networks: shapes, ranges, parameter counts, training, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llfer.enhance.base import num_params
from llfer.registry import ENHANCERS

torch.set_num_threads(1)


def smooth_images(n: int = 8, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth RGB images (uint8) and their darkened versions (x * 0.2)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    high = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    high = (0.15 + 0.8 * high).clamp(0, 1)
    low = high * 0.2
    to_u8 = lambda t: (t.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()  # noqa: E731
    return to_u8(low), to_u8(high)


def check_forward(enh, sizes=((48, 48), (50, 46))) -> None:
    enh.model.eval()
    for h, w in sizes:
        x = torch.rand(2, 3, h, w) * 0.3
        with torch.no_grad():
            y = enh.forward(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()
        assert y.min() >= 0 and y.max() <= 1


def check_fit_decreases(enh, steps: int = 25, lr: float = 1e-3, **fit_kw) -> list[dict]:
    low, high = smooth_images()
    hist = enh.fit(low, high, steps=steps, batch_size=4, patch=24, lr=lr, schedule="none", progress=False, **fit_kw)
    first = np.mean([r["train_loss"] for r in hist[:3]])
    last = np.mean([r["train_loss"] for r in hist[-3:]])
    assert last < first, (first, last)
    return hist


def check_roundtrip(enh, tmp_path) -> None:
    path = tmp_path / f"{enh.name}.safetensors"
    enh.save(path)
    other = type(enh).load(path)
    assert other.config == enh.config
    imgs = smooth_images(2, 24)[0]
    np.testing.assert_array_equal(enh.enhance(imgs), other.enhance(imgs))
    gray = imgs.mean(-1).astype(np.uint8)
    assert other.enhance(gray).shape == gray.shape


# -- Zero-DCE ---------------------------------------------------------------------------------
def test_zerodce_registered_and_params():
    entry = ENHANCERS.entry("zerodce")
    assert entry.defaults["n_feat"] == 32
    enh = ENHANCERS.build("zerodce")
    assert not enh.paired
    assert num_params(enh.model) == 79_416  # the official DCE-Net
    with pytest.raises(Exception):
        ENHANCERS.build("zerodce", bogus=1)


def test_zerodce_forward_shapes():
    check_forward(ENHANCERS.build("zerodce"))


def test_zerodce_trains_without_pairs(tmp_path):
    enh = ENHANCERS.build("zerodce")
    low, _ = smooth_images()
    # unpaired: the "clean" images are junk and must not matter
    junk = np.zeros_like(low)
    hist = enh.fit(low, junk, steps=25, batch_size=4, patch=24, lr=1e-3, schedule="none", log_every=1, progress=False)
    assert np.mean([r["train_loss"] for r in hist[-3:]]) < np.mean([r["train_loss"] for r in hist[:3]])
    assert {"spa", "exp", "col", "tv"} <= set(hist[0])
    # it brightens dark images towards the exposure level
    out = enh.enhance(low)
    assert out.mean() > low.mean()
    check_roundtrip(enh, tmp_path)


# -- MIRNet -----------------------------------------------------------------------------------
def test_mirnet_paper_size_param_count():
    enh = ENHANCERS.build("mirnet", preset="paper")
    n = num_params(enh.model)
    official = 31_787_419  # official swz30/MIRNet MIRNet() (one PReLU shared by all DAUs)
    assert abs(n - official) / official < 0.01
    assert n == official + 17  # each of our 18 DAUs has its own PReLU slope
    c = enh.config
    assert (c["n_feat"], c["n_rrg"], c["n_mrb"], c["height"], c["width"]) == (64, 3, 2, 3, 2)


def test_mirnet_cpu_preset_forward_and_overrides():
    enh = ENHANCERS.build("mirnet", preset="cpu")
    assert enh.config["preset"] == "cpu" and enh.paired
    assert num_params(enh.model) == 58_190  # height 2; official code at this size: 58,189
    assert num_params(ENHANCERS.build("mirnet", preset="cpu", height=3).model) == 333_394
    check_forward(enh)
    small = ENHANCERS.build("mirnet", preset="cpu", n_feat=8, height=2, width=3)
    check_forward(small, sizes=((17, 23),))


def test_mirnet_trains_and_roundtrips(tmp_path):
    enh = ENHANCERS.build("mirnet", preset="cpu", n_feat=8, height=2)
    hist = check_fit_decreases(enh, steps=20, lr=2e-3)
    assert "charbonnier" in hist[0]
    check_roundtrip(enh, tmp_path)


# -- RetinexNet -------------------------------------------------------------------------------
def test_retinexnet_params_and_forward():
    paper = ENHANCERS.build("retinexnet", preset="paper")
    assert num_params(paper.model.decom) == 207_748  # official TF DecomNet (64 ch, 9x9 + 5 x 3x3 + recon)
    assert num_params(paper.model.relight) == 236_865  # official TF RelightNet
    enh = ENHANCERS.build("retinexnet")
    assert enh.config["channels"] == 16
    check_forward(enh)
    r, i = enh.model.decom(torch.rand(1, 3, 20, 20))
    assert r.shape == (1, 3, 20, 20) and i.shape == (1, 1, 20, 20)


def test_retinexnet_two_phase_training(tmp_path):
    enh = ENHANCERS.build("retinexnet", decom_share=0.5)
    low, high = smooth_images()
    before = {k: v.clone() for k, v in enh.model.decom.state_dict().items()}
    hist = enh.fit(low, high, steps=40, batch_size=4, patch=24, lr=2e-3, schedule="none", log_every=1, progress=False)
    assert [r["phase"] for r in hist] == [0.0] * 20 + [1.0] * 20
    assert [r["step"] for r in hist] == list(range(1, 41))
    for rows in (hist[:20], hist[20:]):
        assert np.mean([r["train_loss"] for r in rows[-3:]]) < np.mean([r["train_loss"] for r in rows[:3]])
    decom_after_phase1 = {k: v.clone() for k, v in enh.model.decom.state_dict().items()}
    assert any(not torch.equal(before[k], decom_after_phase1[k]) for k in before)
    # all parameters trainable again after fit
    assert all(p.requires_grad for p in enh.model.parameters())
    check_roundtrip(enh, tmp_path)


def test_retinexnet_decom_frozen_in_relight_phase():
    enh = ENHANCERS.build("retinexnet", decom_share=0.0)
    low, high = smooth_images(4, 24)
    before = {k: v.clone() for k, v in enh.model.decom.state_dict().items()}
    relight_before = {k: v.clone() for k, v in enh.model.relight.state_dict().items()}
    enh.fit(low, high, steps=3, batch_size=2, patch=16, lr=1e-3, progress=False)
    assert all(torch.equal(before[k], v) for k, v in enh.model.decom.state_dict().items())
    assert any(not torch.equal(relight_before[k], v) for k, v in enh.model.relight.state_dict().items())


# -- LLENet -----------------------------------------------------------------------------------
def test_llenet_presets_and_forward():
    enh = ENHANCERS.build("llenet")
    assert enh.config["n_feat"] == 8 and enh.config["vgg_weights"] is None
    assert num_params(enh.model) == 601_688
    assert num_params(ENHANCERS.build("llenet", preset="paper").model) == 9_541_463
    check_forward(enh)
    check_forward(ENHANCERS.build("llenet", n_feat=4, scales=2), sizes=((13, 21),))
    with pytest.raises(Exception):
        ENHANCERS.build("llenet", n_feat=7)


def test_llenet_loss_weights_and_parts():
    enh = ENHANCERS.build("llenet", n_feat=4, perceptual_layer="relu1_2")
    out, high = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    total, parts = enh.composite_loss(out, high)
    assert set(parts) == {"l1", "l2", "color", "wavelet", "perceptual", "ssim"}
    inner = 0.5 * parts["color"] + 0.5 * parts["wavelet"] + 1.0 * parts["perceptual"] + 1.0 * parts["ssim"]
    assert total.item() == pytest.approx(0.1 * parts["l1"] + 0.01 * parts["l2"] + inner, rel=1e-5)
    assert enh.composite_loss(high, high)[0].item() == pytest.approx(0.0, abs=1e-4)


def test_llenet_trains_and_roundtrips(tmp_path):
    enh = ENHANCERS.build("llenet", n_feat=4, perceptual_layer="relu1_2")
    hist = check_fit_decreases(enh, steps=25, lr=3e-3)
    assert hist[-1]["ssim"] < hist[0]["ssim"]
    # the frozen VGG of the perceptual loss is not part of the checkpoint
    assert not any(k.startswith("features") for k in enh.model.state_dict())
    check_roundtrip(enh, tmp_path)


def test_validation_psnr_scores_as_the_quality_stage():
    """Validation PSNR during training (tensors in [0, 1]) equals the quality stage's PSNR of the same uint8 images,
    gray images scored on their channel mean; an exact reconstruction is capped, not infinite."""
    from llfer.enhance.base import psnr_batch
    from llfer.metrics.quality import psnr

    rng = np.random.default_rng(0)
    ref8 = rng.integers(0, 256, (4, 3, 12, 12), dtype=np.uint8)
    out8 = np.clip(ref8.astype(int) + rng.integers(-20, 21, ref8.shape), 0, 255).astype(np.uint8)
    ref, out = torch.from_numpy(ref8).float() / 255, torch.from_numpy(out8).float() / 255
    np.testing.assert_allclose(psnr_batch(out, ref, gray=False).numpy(), psnr(out8, ref8, channels_last=False), rtol=1e-9)
    g_ref, g_out = ref.mean(1, keepdim=True).expand(-1, 3, -1, -1), out.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    want = psnr(np.round(g_out[:, :1].numpy() * 255), np.round(g_ref[:, :1].numpy() * 255), channels_last=False)
    np.testing.assert_allclose(psnr_batch(g_out, g_ref, gray=True).numpy(), want, rtol=1e-9)
    assert psnr_batch(ref, ref, gray=False).tolist() == [100.0] * 4
