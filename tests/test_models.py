"""FER backbones: build offline, shapes, learning, parameter counts, freezing, weights."""

from __future__ import annotations

import pytest
import torch

import llfer.models  # noqa: F401  (registers the backbones)
from llfer.errors import ConfigError, LlferError
from llfer.registry import BACKBONES

torch.set_num_threads(1)

SMALL = ["mini_xception", "efcnet", "resnet18"]
ALL = ["mini_xception", "efcnet", "resnet18", "resnet50", "inception_resnet_v2", "alexnet"]


def _need(name: str) -> None:
    if name not in BACKBONES:
        pytest.skip(f"backbone {name} not registered")


def _counts(model: torch.nn.Module) -> tuple[int, int]:
    params = sum(p.numel() for p in model.parameters())
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if "running_" in n)
    return params, bn_stats


# ------------------------------------------------------------ small nets --
@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("size", [48, 32])
def test_small_forward_shapes(name, size):
    _need(name)
    torch.manual_seed(0)
    m = BACKBONES.build(name, num_classes=7, in_channels=1, input_size=size).eval()
    with torch.no_grad():
        out = m(torch.rand(2, 1, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SMALL)
def test_small_overfit(name):
    """A few Adam steps on 8 fixed images lower the loss clearly."""
    _need(name)
    torch.manual_seed(0)
    m = BACKBONES.build(name, num_classes=4, in_channels=1, input_size=32).train()
    x = torch.rand(8, 1, 32, 32)
    y = torch.arange(8) % 4
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_mini_xception_param_count():
    """58,423 in Keras terms (paper/seed 001) = torch params + BN running stats."""
    _need("mini_xception")
    params, stats = _counts(BACKBONES.build("mini_xception"))
    assert abs(params + stats - 58_423) <= 0.05 * 58_423
    assert params + stats == 58_423  # exact for the reference layout
    assert params == 56_951


def test_unknown_option_fails():
    _need("mini_xception")
    with pytest.raises(ConfigError, match="unknown parameter"):
        BACKBONES.build("mini_xception", dropout=0.5)
    with pytest.raises(TypeError):
        BACKBONES.get("mini_xception")(dropout=0.5)


def test_mini_xception_small_inputs():
    _need("mini_xception")
    m = BACKBONES.build("mini_xception", input_size=8).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 1, 8, 8)).shape == (2, 7)
    with pytest.raises(ConfigError):
        BACKBONES.build("mini_xception", input_size=4)


def test_scratch_normalisation_first_op():
    _need("mini_xception")
    m = BACKBONES.build("mini_xception")
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    assert torch.allclose(m.input_adapter(x).flatten(), torch.tensor([-1.0, 0.0, 1.0]))


# -------------------------------------------------------- local weights --
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_roundtrip(tmp_path, suffix):
    _need("mini_xception")
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
    _need("mini_xception")
    with pytest.raises(LlferError, match="does not exist"):
        BACKBONES.build("mini_xception", pretrained=str(tmp_path / "nope.pth"))
    other = BACKBONES.build("mini_xception", num_classes=3)
    torch.save(other.state_dict(), tmp_path / "three.pth")
    with pytest.raises(LlferError, match="does not match"):
        BACKBONES.build("mini_xception", pretrained=str(tmp_path / "three.pth"))
    with pytest.raises(LlferError, match="ImageNet"):
        BACKBONES.build("mini_xception", pretrained=True)
