"""Shared pieces of the FER backbones: input adapters and weight loading.

Every backbone takes float N x C x S x S in [0, 1].  The first op of each model
is an :class:`InputAdapter` that (in this order) repeats a single grey channel
to 3 when the architecture is RGB, normalises with a fixed mean/std, and
bilinearly upsamples inputs smaller than the architecture's minimum size.
Keeping this inside the model means a checkpoint carries its own
preprocessing and callers never need to know it.

``pretrained`` handling is shared as well: ``False`` builds random weights
(offline), ``True`` asks torchvision/timm for their ImageNet weights through
their normal download mechanism (wrapped so that a failure becomes an
:class:`~llfer.errors.LlferError` with a clear message), and a string / path
loads a local ``.pth`` / ``.pt`` (a ``state_dict``, loaded with
``torch.load(weights_only=True)``) or ``.safetensors`` file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, LlferError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InputAdapter(nn.Module):
    """Repeat grey -> RGB, normalise ``(x - mean) / std``, upsample to ``min_size``.

    ``mean``/``std`` are per output channel (length 1 broadcasts).  Upsampling is
    bilinear (``align_corners=False``) and only applied when the spatial size is
    below ``min_size`` (then to exactly ``min_size``, keeping the aspect ratio of
    square inputs).  Buffers are non-persistent: they are constants of the
    architecture, not weights, so state dicts stay interchangeable.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        min_size: int = 0,
    ):
        super().__init__()
        if in_channels != out_channels and in_channels != 1:
            raise ConfigError(
                f"in_channels={in_channels}: this backbone takes 1 (repeated) or "
                f"{out_channels} input channels"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.min_size = int(min_size)
        m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", m, persistent=False)
        self.register_buffer("std", s, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected N x {self.in_channels} x H x W input, got {tuple(x.shape)}"
            )
        if self.in_channels == 1 and self.out_channels != 1:
            x = x.expand(-1, self.out_channels, -1, -1)
        x = (x - self.mean) / self.std
        h, w = x.shape[-2:]
        if self.min_size and min(h, w) < self.min_size:
            scale = self.min_size / min(h, w)
            size = (max(self.min_size, round(h * scale)), max(self.min_size, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, min_size={self.min_size}"


class StagedBackbone:
    """Mixin of every FER backbone: per-stage feature maps beside the logits.

    A *stage* is a block group at a natural boundary of the architecture (each
    backbone's docstring says which), listed in ``stage_names``.  These are the
    features E_s / N_s of [ll-fer] eq. (12), the FER perceptual loss with which
    a frozen FER network supervises an enhancer.

    Subclasses define three hooks that, composed, are ``forward`` op for op:
    ``_before_stages(x)`` (input adapter and stem), ``_stage_blocks()`` (one
    callable per stage, sharing the model's modules) and ``_after_stages(f)``
    (last stage output -> logits); or override :meth:`stage_features`.
    """

    stage_names: tuple[str, ...] = ()

    @property
    def in_channels(self) -> int:
        """Channels ``forward`` takes (1 = grey; the input adapter repeats it where needed)."""
        return self.input_adapter.in_channels  # type: ignore[attr-defined]

    def _before_stages(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stage_blocks(self) -> Sequence[Callable[[torch.Tensor], torch.Tensor]]:  # pragma: no cover
        raise NotImplementedError

    def _after_stages(self, f: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of each stage (``len(stage_names)`` maps N x C_s x H_s x W_s), differentiable.

        Takes the same input as ``forward`` (float N x in_channels x S x S in
        [0, 1]) and uses the same weights; the head is not run.
        """
        x = self._before_stages(x)
        feats = []
        for block in self._stage_blocks():
            x = block(x)
            feats.append(x)
        return feats

    def forward_stages(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(stage_features(x), logits)`` from one pass; the logits equal ``forward(x)`` bit for bit."""
        feats = self.stage_features(x)
        return feats, self._after_stages(feats[-1])


def scratch_adapter(in_channels: int, min_size: int = 0) -> InputAdapter:
    """``(x - 0.5) / 0.5``: [0, 1] -> [-1, 1], as [mini-xception-fer] feeds mini-Xception."""
    return InputAdapter(in_channels, in_channels, (0.5,), (0.5,), min_size)


def check_common(num_classes: int, in_channels: int, input_size: int) -> None:
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if int(in_channels) < 1:
        raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
    if int(input_size) < 1:
        raise ConfigError(f"input_size must be >= 1, got {input_size}")


def freeze(modules: Iterable[nn.Module]) -> None:
    """Set ``requires_grad=False`` on every parameter of ``modules``."""
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)


# ----------------------------------------------------------------- weights --
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a local weights file: ``.safetensors`` or a torch ``state_dict``.

    Torch files are read with ``weights_only=True`` (no pickled code).  A dict
    wrapping the state dict under ``state_dict`` / ``model`` / ``model_state``
    (common checkpoint layouts) is unwrapped; a ``module.`` prefix left by
    ``DataParallel`` is stripped.
    """
    p = Path(path)
    if not p.is_file():
        raise LlferError(f"pretrained: weights file {str(p)!r} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p), device="cpu")
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised as a one-line user error
        raise LlferError(f"pretrained: cannot read weights file {str(p)!r}: {e}") from e
    for key in ("state_dict", "model_state", "model"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
            break
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise LlferError(f"pretrained: {str(p)!r} does not hold a state_dict of tensors")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def load_local_weights(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    base: str | None = None,
    head_prefixes: Sequence[str] = (),
) -> None:
    """Load a local weights file into ``model``.

    Two layouts are accepted:

    * a full llfer state dict (``model.state_dict()`` saved earlier): loaded
      strictly;
    * a state dict of the wrapped architecture alone (for example torchvision's
      ``resnet50-*.pth`` / timm's ImageNet weights) when ``base`` names the
      attribute holding that architecture: keys are loaded into ``model.<base>``;
      tensors whose shape differs (a 1000-class head) are skipped, and only keys
      starting with one of ``head_prefixes`` may stay unloaded.

    Anything else raises :class:`LlferError` listing a few offending keys.
    """
    sd = read_state_dict(path)
    own = model.state_dict()
    if set(sd) == set(own) and all(sd[k].shape == own[k].shape for k in sd):
        model.load_state_dict(sd, strict=True)
        return
    if base is not None:
        sub = getattr(model, base)
        sub_own = sub.state_dict()
        if any(k in sub_own for k in sd):
            keep = {k: v for k, v in sd.items() if k in sub_own and sub_own[k].shape == v.shape}
            missing = [k for k in sub_own if k not in keep]
            bad = [k for k in missing if not any(k.startswith(h) for h in head_prefixes)]
            if not bad:
                sub.load_state_dict(keep, strict=False)
                return
            raise LlferError(
                f"pretrained: {str(path)!r} lacks {len(bad)} backbone tensors "
                f"(e.g. {', '.join(bad[:3])})"
            )
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    raise LlferError(
        f"pretrained: {str(path)!r} does not match this model: "
        f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
        f"(e.g. {unexpected[:3]}), {len(shape)} with other shapes (e.g. {shape[:3]})"
    )


def download_guard(name: str, fn: Callable[[], nn.Module]) -> nn.Module:
    """Run a torchvision/timm builder that downloads ImageNet weights.

    Any failure (offline machine, proxy, corrupt cache) becomes an LlferError
    telling the user to pass a local weights file instead.
    """
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a download can fail in many ways
        raise LlferError(
            f"pretrained=True: could not get ImageNet weights for {name} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "this machine may be offline - pass pretrained='<path to .pth or .safetensors>' "
            "or pretrained=false"
        ) from e


def resolve_pretrained(pretrained: bool | str | os.PathLike) -> bool | str:
    """Validate ``pretrained``: returns False, True, or a path string."""
    if isinstance(pretrained, bool):
        return pretrained
    if isinstance(pretrained, (str, os.PathLike)):
        s = os.fspath(pretrained)
        if s.lower() in ("", "false", "none", "no"):
            return False
        if s.lower() in ("true", "imagenet", "yes"):
            return True
        return s
    if pretrained is None:
        return False
    raise ConfigError(f"pretrained must be a bool or a path, got {pretrained!r}")


def no_imagenet(name: str) -> LlferError:
    return LlferError(
        f"pretrained=True: {name} has no published ImageNet weights; "
        "pass a local weights file path or pretrained=false"
    )


class LazyTorchvisionModels:
    """``torchvision.models`` imported on first use: importing it costs seconds per stage start."""

    def __getattr__(self, name: str):
        from torchvision import models

        return getattr(models, name)


tvm = LazyTorchvisionModels()
