"""FER backbones: build offline, shapes, learning, parameter counts, freezing, weights."""

from __future__ import annotations

import pytest
import torch

from llfer.errors import ConfigError, LlferError
from llfer.registry import BACKBONES
from test_registries import BACKBONE_EXPECT, slow_if_big

torch.set_num_threads(1)

# every registered backbone is built, run forward and backward and counted in tests/test_registries.py
SMALL = [n for n in BACKBONES.names() if BACKBONE_EXPECT[n]["quick_overfit"]]


def _counts(model: torch.nn.Module) -> tuple[int, int]:
    params = sum(p.numel() for p in model.parameters())
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if "running_" in n)
    return params, bn_stats


# ------------------------------------------------------------ small nets --
@pytest.mark.parametrize("name", SMALL)
def test_small_overfit(name):
    """A few Adam steps on 8 fixed images lower the loss clearly."""
    torch.manual_seed(0)
    m = BACKBONES.build(name, num_classes=4, in_channels=1, input_size=32).train()
    x = torch.rand(8, 1, 32, 32)
    y = torch.arange(8) % 4
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_mini_xception_param_count():
    """58,423 in Keras terms (paper/[mini-xception-fer]) = torch params + BN running stats."""
    params, stats = _counts(BACKBONES.build("mini_xception"))
    assert abs(params + stats - 58_423) <= 0.05 * 58_423
    assert params + stats == 58_423  # exact for the reference layout
    assert params == 56_951


def test_unknown_option_fails():
    with pytest.raises(ConfigError, match="unknown parameter"):
        BACKBONES.build("mini_xception", dropout=0.5)
    with pytest.raises(TypeError):
        BACKBONES.get("mini_xception")(dropout=0.5)


def test_mini_xception_small_inputs():
    m = BACKBONES.build("mini_xception", input_size=8).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 1, 8, 8)).shape == (2, 7)
    with pytest.raises(ConfigError):
        BACKBONES.build("mini_xception", input_size=4)


def test_scratch_normalisation_first_op():
    m = BACKBONES.build("mini_xception")
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    assert torch.allclose(m.input_adapter(x).flatten(), torch.tensor([-1.0, 0.0, 1.0]))


# -------------------------------------------------------- local weights --
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_roundtrip(tmp_path, suffix):
    torch.manual_seed(1)
    src = BACKBONES.build("mini_xception").eval()
    # make BN stats non-trivial so that buffers are checked too
    src.train()
    with torch.no_grad():
        src(torch.rand(4, 1, 48, 48))
    src.eval()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(src.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = BACKBONES.build("mini_xception", pretrained=str(path)).eval()
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(src(x), dst(x), atol=1e-6)


def test_local_weights_errors(tmp_path):
    with pytest.raises(LlferError, match="does not exist"):
        BACKBONES.build("mini_xception", pretrained=str(tmp_path / "nope.pth"))
    other = BACKBONES.build("mini_xception", num_classes=3)
    torch.save(other.state_dict(), tmp_path / "three.pth")
    with pytest.raises(LlferError, match="does not match"):
        BACKBONES.build("mini_xception", pretrained=str(tmp_path / "three.pth"))
    with pytest.raises(LlferError, match="ImageNet"):
        BACKBONES.build("mini_xception", pretrained=True)


# ------------------------------------------------------------- all nets --
def test_inception_forward_48():
    m = BACKBONES.build("inception_resnet_v2", num_classes=7).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    _check_adapter(m, 75)


def _check_adapter(m, size):
    a = m.input_adapter
    assert a.min_size == size
    assert a(torch.rand(1, a.in_channels, 20, 20)).shape == (1, 3, size, size)
    big = size + 5
    assert a(torch.rand(1, a.in_channels, big, big)).shape == (1, 3, big, big)


ADAPTER_MIN_SIZE = {"resnet50": 32, "resnet18": 32, "alexnet": 63, "inception_resnet_v2": 75}  # ImageNet nets


@pytest.mark.parametrize("name", slow_if_big(BACKBONES.names()))
def test_rgb_input_and_bad_channels(name):
    m = BACKBONES.build(name, num_classes=3, in_channels=3, input_size=32).eval()
    with torch.no_grad():
        assert m(torch.rand(1, 3, 32, 32)).shape == (1, 3)
    if name in ADAPTER_MIN_SIZE:
        _check_adapter(m, ADAPTER_MIN_SIZE[name])
        with pytest.raises(ConfigError):
            BACKBONES.get(name)(in_channels=2)


def test_imagenet_normalisation_and_gray_repeat():
    m = BACKBONES.build("resnet18")
    x = torch.full((1, 1, 40, 40), 0.485)
    y = m.input_adapter(x)
    assert y.shape == (1, 3, 40, 40)
    assert torch.allclose(y[0, 0], torch.zeros(40, 40), atol=1e-6)
    assert torch.allclose(y[0, 1], torch.full((40, 40), (0.485 - 0.456) / 0.224), atol=1e-5)


# -------------------------------------------------------------- efcnet --
def test_efcnet_param_count():
    """[efc-lowres] Table 1: 513,484 (Keras, BN moving stats included) at 32 x 32, 7 classes."""
    m = BACKBONES.build("efcnet", input_size=32, in_channels=3)
    params, stats = _counts(m)
    assert abs(params + stats - 513_484) <= 0.10 * 513_484
    assert abs(params - 513_484) <= 0.10 * 513_484


def test_efcnet_s_swish_and_attention_shapes():
    from llfer.models.efcnet import EFC, SSwish

    x = torch.linspace(-4, 4, 9)
    for beta in (0.5, 1.0, 2.0):
        assert torch.allclose(SSwish(beta)(x), x / (1 + torch.exp(-beta * x)))
    blk = EFC(8, 16, stride=2, expansion=2.0)
    assert blk(torch.rand(2, 8, 9, 9)).shape == (2, 16, 5, 5)
    assert blk.sp_att.conv.out_channels == 1  # eq. (8): single-channel map
    assert blk.ch_att.conv.out_channels == 16  # eq. (9): one weight per output channel
    m = BACKBONES.build("efcnet", beta=2.0)
    assert all(a.beta == 2.0 for a in m.modules() if isinstance(a, SSwish))
    with torch.no_grad():
        for s in (5, 8, 10, 20):
            assert m.eval()(torch.rand(1, 1, s, s)).shape == (1, 7)


def test_efcnet_attention_gates_start_unsaturated():
    """Eqs. (8)/(9) gates must start in sigmoid's linear range: a kaiming fan_out init of the
    single-output spatial-attention conv saturated them at 0/1 and stalled training."""
    from llfer.models.efcnet import ChannelAttention, SpatialAttention

    torch.manual_seed(0)
    m = BACKBONES.build("efcnet", input_size=20, num_classes=8).train()
    gates = []
    hooks = [a.register_forward_hook(lambda mod, inp, out: gates.append(out.detach().flatten()))
             for a in m.modules() if isinstance(a, (SpatialAttention, ChannelAttention))]
    with torch.no_grad():
        m(torch.rand(16, 1, 20, 20))
    for h in hooks:
        h.remove()
    assert len(gates) == 12  # 6 EFC modules x (spatial, channel)
    for g in gates:
        assert ((g > 0.02) & (g < 0.98)).float().mean() > 0.9


# ------------------------------------------------------------ resnet18 --
@pytest.mark.parametrize("small_input,sizes", [(False, [12, 6, 3, 2]), (True, [48, 24, 12, 6])])
def test_resnet18_stage_features(small_input, sizes):
    m = BACKBONES.build("resnet18", small_input=small_input).eval()
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        feats = m.stage_features(x)
        assert [f.shape[1] for f in feats] == [64, 128, 256, 512]
        assert [f.shape[-1] for f in feats] == sizes
        assert torch.allclose(m(x), m.net.fc(feats[-1].mean((2, 3))), atol=1e-5)


# ------------------------------------------------ freezing and weights --
def _tv_state(name, **kw):
    """An ImageNet-layout state dict of the bare torchvision net (1000-class head)."""
    import torchvision

    torch.manual_seed(3)
    return getattr(torchvision.models, name)(weights=None, **kw).state_dict()


def test_resnet50_local_imagenet_file_and_keras_freeze(tmp_path):
    sd = _tv_state("resnet50")
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(sd, path)
    m = BACKBONES.build("resnet50", pretrained=str(path))
    assert torch.equal(m.net.conv1.weight, sd["conv1.weight"])
    assert torch.equal(m.net.layer4[2].bn3.running_var, sd["layer4.2.bn3.running_var"])
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    # 170 Keras layers frozen = all but conv5_block3_3_conv/_bn (layer4[2].conv3/bn3) + head
    assert {n for n in trainable if not n.startswith("net.fc.")} == {
        "net.layer4.2.conv3.weight", "net.layer4.2.bn3.weight", "net.layer4.2.bn3.bias"}
    assert not m.net.conv1.weight.requires_grad
    assert len([n for n in trainable if n.startswith("net.fc.")]) == 6  # 4096, 1024, classes
    m.train()
    assert not m.net.bn1.training and m.net.layer4[2].bn3.training  # frozen BN stays in eval
    m2 = BACKBONES.build("resnet50", pretrained=str(path), freeze_layers=7)
    assert not m2.net.conv1.weight.requires_grad and m2.net.layer1[0].conv1.weight.requires_grad
    with pytest.raises(ConfigError):
        BACKBONES.build("resnet50", freeze_layers=176)


def test_keras_layer_map():
    from llfer.models.resnet import keras_resnet50_layers

    layers = keras_resnet50_layers(BACKBONES.build("resnet50").net)
    names = [n for n, _ in layers]
    assert len(names) == 175 and names[170] == "conv5_block3_2_relu"
    assert names[-1] == "conv5_block3_out"
    weighted = [m for _, m in layers if m is not None]
    assert len(weighted) == 53 + 53  # 53 convs + 53 BNs in ResNet50


def test_alexnet_local_file_freezes_conv1_4(tmp_path):
    # ImageNet-layout file without the (huge, unused) FC layers
    sd = {k: v for k, v in _tv_state("alexnet").items() if k.startswith("features.")}
    path = tmp_path / "alexnet.pth"
    torch.save(sd, path)
    m = BACKBONES.build("alexnet", pretrained=str(path))
    convs = m.convs()
    assert [c.weight.requires_grad for c in convs] == [False, False, False, False, True]
    assert torch.equal(convs[0].weight, sd["features.0.weight"])
    assert all(p.requires_grad for p in m.net.classifier.parameters())
    m2 = BACKBONES.build("alexnet", pretrained=str(path), freeze_convs=1)
    assert [c.weight.requires_grad for c in m2.convs()] == [False, True, True, True, True]
    assert all(p.requires_grad for p in BACKBONES.build("alexnet").parameters())


@pytest.mark.parametrize("small_input", [False, True])
def test_resnet18_local_file(tmp_path, small_input):
    sd = _tv_state("resnet18")
    from safetensors.torch import save_file

    path = tmp_path / "r18.safetensors"
    save_file(sd, str(path))
    m = BACKBONES.build("resnet18", pretrained=str(path), small_input=small_input)
    assert torch.equal(m.net.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
    assert torch.equal(m.net.conv1.weight, sd["conv1.weight"]) != small_input


def test_full_model_roundtrip_torchvision(tmp_path):
    src = BACKBONES.build("resnet18", num_classes=4).eval()
    torch.save(src.state_dict(), tmp_path / "m.pth")
    dst = BACKBONES.build("resnet18", num_classes=4, pretrained=str(tmp_path / "m.pth")).eval()
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(src(x), dst(x))
    # a file for another architecture is refused with a clear message
    torch.save({k: v for k, v in _tv_state("alexnet").items() if k.startswith("features.")},
               tmp_path / "alex.pth")
    with pytest.raises(LlferError, match="lacks|does not match"):
        BACKBONES.build("resnet18", pretrained=str(tmp_path / "alex.pth"))


@pytest.mark.slow
def test_inception_local_file(tmp_path):
    import timm

    torch.manual_seed(0)
    net = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=1000)
    sd = {k: v for k, v in net.state_dict().items()}
    torch.save(sd, tmp_path / "irv2.pth")
    m = BACKBONES.build("inception_resnet_v2", pretrained=str(tmp_path / "irv2.pth"))
    assert torch.equal(m.net.conv2d_1a.conv.weight, sd["conv2d_1a.conv.weight"])
    assert m.net.classif.out_features == 7


@pytest.mark.parametrize("name,target", [
    ("resnet50", "torchvision.models.resnet50"),
    ("resnet18", "torchvision.models.resnet18"),
    ("alexnet", "torchvision.models.alexnet"),
    ("inception_resnet_v2", "timm.create_model"),
])
def test_pretrained_true_download_failure_is_llfer_error(monkeypatch, name, target):
    """pretrained=True goes through torchvision/timm; a failed download is a clear LlferError."""
    import importlib

    mod_name, attr = target.rsplit(".", 1)
    mod = importlib.import_module(mod_name)
    real = getattr(mod, attr)

    def fake(*a, **kw):
        if kw.get("weights") is not None or kw.get("pretrained"):
            raise OSError("network unreachable")
        return real(*a, **kw)

    monkeypatch.setattr(mod, attr, fake)
    with pytest.raises(LlferError, match="offline"):
        BACKBONES.build(name, pretrained=True)
