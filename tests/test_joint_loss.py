"""The joint enhancer -> FER loss, [ll-fer] eq. (13) (``llfer.enhance.joint_loss``), on tiny CPU batches."""

from __future__ import annotations

import pytest
import torch

from llfer.enhance.joint_loss import JointLoss, fer_input, ferp_loss, freeze_fer
from llfer.errors import ConfigError, LlferError
from llfer.registry import BACKBONES, ENHANCERS, import_all

torch.set_num_threads(1)
import_all()

N, S = 4, 24


def llenet(seed=0):
    # LLENet at its smallest; wp=0 skips the VGG perceptual term (eq. 9), which needs no test here
    torch.manual_seed(seed)
    return ENHANCERS.build("llenet", n_feat=4, scales=2, wp=0.0)


def fer(in_channels=1, seed=0):
    torch.manual_seed(seed)
    return BACKBONES.build("mini_xception", in_channels=in_channels, input_size=S)


def batch(seed=0, rgb=False):
    g = torch.Generator().manual_seed(seed)
    if rgb:  # smooth colour images
        high = torch.nn.functional.interpolate(torch.rand(N, 3, 6, 6, generator=g), size=(S, S), mode="bilinear")
    else:  # grey faces, as to_tensor gives them
        high = torch.rand(N, 1, S, S, generator=g).expand(-1, 3, -1, -1).clone()
    low = 0.8 * high.pow(2.5)  # darkened as [ll-fer] eq. (14) does, without noise
    labels = torch.randint(0, 7, (N,), generator=g)
    return low, high, labels


def test_ferp_loss_is_eq_12():
    a = [torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 2, 2)]
    b = [torch.ones(2, 3, 4, 4), torch.full((2, 5, 2, 2), -3.0)]
    total, per = ferp_loss(a, b)
    assert [p.item() for p in per] == [1.0, 3.0] and total.item() == 4.0  # sum over stages of the MAE
    assert ferp_loss(a, a)[0].item() == 0.0
    with pytest.raises(LlferError, match="stages"):
        ferp_loss(a, b[:1])


def test_fer_input_channels_and_size():
    x = torch.rand(2, 3, 24, 24)
    g = fer_input(x, 1)
    assert g.shape == (2, 1, 24, 24) and torch.allclose(g[:, 0], x.mean(1))
    assert fer_input(x, 3) is x
    assert fer_input(x, 1, 48).shape == (2, 1, 48, 48) and fer_input(x, 3, 12).shape == (2, 3, 12, 12)
    with pytest.raises(ConfigError, match="2 channels"):
        fer_input(x, 2)


def test_terms_zero_and_positive_and_weighted_sum():
    enh, low, high, labels = llenet(), *batch()
    # enhanced = normal-light: the FER features agree (L_ferp 0) and so does the reconstruction
    with torch.no_grad():
        same = enh.forward(low)
    _, parts = JointLoss(enh, fer())(low, same, labels)
    assert parts["ferp"] < 1e-6 and parts["res"] < 1e-4 and parts["agree"] == 1.0
    assert parts["cls"] > 0 and parts["label"] > 0
    # a real low-light batch: every term positive, one L1 per FER stage
    loss, parts = JointLoss(enh, fer())(low, high, labels)
    assert all(parts[k] > 0 for k in ("res", "ferp", "cls", "label"))
    stages = [k for k in parts if k.startswith("ferp_")]
    assert stages == ["ferp_module1", "ferp_module2", "ferp_module3", "ferp_module4"]
    assert sum(parts[k] for k in stages) == pytest.approx(parts["ferp"], rel=1e-5)
    assert loss.item() == pytest.approx(sum(parts[k] for k in ("res", "ferp", "cls", "label")), rel=1e-5)
    # weights: 0 leaves a term out, others scale it
    loss_w, parts_w = JointLoss(enh, fer(), w_res=0.0, w_ferp=2.0, w_cls=0.5, w_label=0.0)(low, high, labels)
    assert "res" not in parts_w and not any(k.startswith("res_") for k in parts_w)
    assert loss_w.item() == pytest.approx(2 * parts["ferp"] + 0.5 * parts["cls"], rel=1e-5)


@pytest.mark.parametrize("name", ["llenet", "zerodce"])
def test_res_is_the_enhancers_own_loss(name):
    """L_res is loss(low, high): LLENet through composite_loss on the shared output, others directly."""
    enh = llenet() if name == "llenet" else ENHANCERS.build("zerodce", n_feat=8, n_iter=2)
    low, high, labels = batch(1)
    torch.manual_seed(0)
    own, own_parts = enh.loss(low, high)
    loss, parts = JointLoss(enh, fer(), w_ferp=0.0, w_cls=0.0, w_label=0.0)(low, high, labels)
    assert loss.item() == pytest.approx(own.item(), rel=1e-5)
    assert {f"res_{k}" for k in own_parts} <= set(parts)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_gradients_reach_the_enhancer_not_the_frozen_fer(in_channels):
    enh, model, (low, high, labels) = llenet(), fer(in_channels), batch(2)
    model.train()
    crit = JointLoss(enh, model, fer_size=32)  # resized for the FER network, as a stage feeds it
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for w in ("w_ferp", "w_cls", "w_label"):  # each FER-side term alone reaches the enhancer
        one = JointLoss(enh, model, **{k: float(k == w) for k in ("w_res", "w_ferp", "w_cls", "w_label")})
        enh.model.zero_grad(set_to_none=True)
        one(low, high, labels)[0].backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enh.model.parameters()), w
    enh.model.zero_grad(set_to_none=True)
    model.train()  # a caller's train() is undone at every call of the frozen scheme
    loss, _ = crit(low, high, labels)
    loss.backward()
    assert not model.training
    grads = [p.grad for p in enh.model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in model.parameters())


def test_unfrozen_classifier_gets_gradients_but_targets_do_not():
    enh, model, (low, high, labels) = llenet(), fer(), batch(3)
    model.eval()
    loss, _ = JointLoss(enh, model, freeze=False)(low, high, labels)
    loss.backward()
    assert all(p.requires_grad for p in model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_a_few_steps_lower_the_joint_loss():
    # colour images: on grey ones the hue of LLENet's colour-space term (eq. 7) is undefined and its
    # gradient noisy, so a few steps need not lower L_res there
    enh, (low, high, labels) = llenet(), batch(4, rgb=True)
    model = freeze_fer(fer())
    crit = JointLoss(enh, model)
    opt = torch.optim.Adam(enh.model.parameters(), lr=1e-2)
    enh.model.train()
    history = []
    for _ in range(15):
        loss, _ = crit(low, high, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.95 * history[0] and history[-1] == min(history), history


def test_bad_arguments_fail_in_one_line():
    enh, model, (low, high, labels) = llenet(), fer(), batch()
    with pytest.raises(ConfigError, match="w_cls must be a finite number >= 0"):
        JointLoss(enh, model, w_cls=-1.0)
    with pytest.raises(ConfigError, match="every weight"):
        JointLoss(enh, model, w_res=0, w_ferp=0, w_cls=0, w_label=0)
    with pytest.raises(ConfigError, match="no stage features"):
        JointLoss(enh, torch.nn.Conv2d(1, 7, 3))
    with pytest.raises(ConfigError, match="not a learned enhancer"):
        JointLoss(ENHANCERS.build("he"), model)
    with pytest.raises(ConfigError, match="fer_size"):
        JointLoss(enh, model, fer_size=0)
    crit = JointLoss(enh, model)
    with pytest.raises(LlferError, match="labels must be 4 integers"):
        crit(low, high, labels.float())
    with pytest.raises(LlferError, match="low and high"):
        crit(low, high[:, :1], labels)
