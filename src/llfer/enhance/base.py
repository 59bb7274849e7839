"""Enhancer interfaces.

Every entry of ``ENHANCERS`` is a class built from its params (keyword
arguments) whose :meth:`Enhancer.enhance` maps uint8 images, N x H x W
(grayscale) or N x H x W x 3 (RGB), to uint8 images of the same shape.

Learned enhancers subclass :class:`LearnedEnhancer`: they build an
``nn.Module`` mapping float N x 3 x H x W in [0, 1] to the same, define their
training loss, and are trained by :meth:`LearnedEnhancer.fit` on pairs
(degraded, clean) of uint8 arrays (unpaired methods ignore the clean image).
Grayscale images are repeated to 3 channels for the network and the output is
averaged back to one channel.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import LlferError


class Enhancer:
    """Base class of all enhancers."""

    learned: ClassVar[bool] = False
    name: ClassVar[str] = ""

    def enhance(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 N x H x W (x 3) -> float N x 3 x H x W in [0, 1] (gray repeated)."""
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    if t.ndim == 3:
        t = t.unsqueeze(1).expand(-1, 3, -1, -1)
    else:
        t = t.permute(0, 3, 1, 2)
    return t.float().div_(255.0)


def from_tensor(x: torch.Tensor, gray: bool) -> np.ndarray:
    """float N x 3 x H x W in [0, 1] -> uint8 N x H x W (gray: channel mean) or N x H x W x 3."""
    x = x.detach().float().clamp(0, 1)
    if gray:
        x = x.mean(dim=1)
    else:
        x = x.permute(0, 2, 3, 1)
    return (x * 255.0).round_().to(torch.uint8).cpu().numpy()


def random_crops(
    low: torch.Tensor, high: torch.Tensor, patch: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random patch of each pair (and a random flip), as in enhancer training."""
    n, _, h, w = low.shape
    if patch and patch < min(h, w):
        ys = torch.randint(0, h - patch + 1, (n,), generator=gen)
        xs = torch.randint(0, w - patch + 1, (n,), generator=gen)
        lo = torch.stack([low[i, :, y : y + patch, x : x + patch] for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist()))])
        hi = torch.stack([high[i, :, y : y + patch, x : x + patch] for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist()))])
        low, high = lo, hi
    flip = torch.rand(n, generator=gen) < 0.5
    if flip.any():
        low = torch.where(flip[:, None, None, None], low.flip(-1), low)
        high = torch.where(flip[:, None, None, None], high.flip(-1), high)
    return low, high


class LearnedEnhancer(Enhancer):
    """A trainable enhancer.  Subclasses implement :meth:`build_model` and :meth:`loss`.

    ``paired`` is False for zero-reference methods (Zero-DCE).  Subclasses with
    several training phases (RetinexNet) override :meth:`fit`.
    """

    learned: ClassVar[bool] = True
    paired: ClassVar[bool] = True

    def __init__(self, **config: Any):
        self.config = dict(config)
        self.model: nn.Module = self.build_model()

    # -- to implement ---------------------------------------------------------
    def build_model(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of one batch (float N x 3 x h x w in [0, 1]); returns (loss, parts)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        """Enhance a float batch; subclasses whose model returns extras override this."""
        return self.model(low)

    # -- training ---------------------------------------------------------------
    def make_optimizer(self, params: Any, optimizer: str, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        if optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        if optimizer == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
        raise LlferError(f"unknown optimizer {optimizer!r}; allowed: adam, adamw, sgd")

    def fit(
        self,
        low: np.ndarray,
        high: np.ndarray,
        *,
        iterations: int = 1000,
        batch_size: int = 16,
        patch: int = 48,
        optimizer: str = "adam",
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> list[dict[str, float]]:
        """Train on uint8 pairs for ``iterations`` steps; returns the loss history (one row per step)."""
        from tqdm.auto import tqdm

        if len(low) == 0:
            raise LlferError("no training images for the enhancer")
        device = torch.device(device)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.model.to(device).train()
        opt = self.make_optimizer([p for p in self.model.parameters() if p.requires_grad], optimizer, lr, weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, iterations))
        history: list[dict[str, float]] = []
        low_t = torch.from_numpy(np.ascontiguousarray(low))
        high_t = torch.from_numpy(np.ascontiguousarray(high))
        bar = tqdm(range(iterations), desc=f"train {self.name}", disable=not progress, mininterval=2)
        for step in bar:
            idx = torch.randint(0, len(low_t), (min(batch_size, len(low_t)),), generator=gen)
            lo = to_tensor(low_t[idx].numpy(), device)
            hi = to_tensor(high_t[idx].numpy(), device)
            lo, hi = random_crops(lo, hi, patch, gen)
            loss, parts = self.loss(lo, hi)
            if not torch.isfinite(loss):
                raise LlferError(f"{self.name}: loss became {loss.item()} at step {step}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            row = {"step": step, "loss": float(loss.item()), **{k: float(v) for k, v in parts.items()}}
            history.append(row)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{row['loss']:.4f}")
        self.model.eval()
        return history

    # -- inference ----------------------------------------------------------------
    @torch.inference_mode()
    def enhance(self, images: np.ndarray, batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
        """Enhance uint8 images in batches (channels_last: about 1.4x faster on the CPU for these nets)."""
        self.model.to(device).eval()
        self.model.to(memory_format=torch.channels_last)
        gray = images.ndim == 3
        out = []
        for i in range(0, len(images), batch_size):
            x = to_tensor(np.asarray(images[i : i + batch_size]), device).contiguous(memory_format=torch.channels_last)
            out.append(from_tensor(self.forward(x), gray))
        if not out:
            return np.zeros_like(images)
        return np.concatenate(out)

    # -- checkpoints ------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
        """Save weights with the config that built them (safetensors + JSON header metadata)."""
        from safetensors.torch import save_file

        from ..io import atomic_path, dumps_json

        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        meta = {"enhancer": self.name, "config": dumps_json(self.config), "extra": dumps_json(extra or {})}
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=meta)
            _sort_metadata(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **overrides: Any) -> "LearnedEnhancer":
        """Rebuild from a checkpoint written by :meth:`save` (config from the file, then overrides)."""
        import json

        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.exists():
            raise LlferError(f"enhancer checkpoint {path} does not exist")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        except Exception as e:  # safetensors raises several types
            raise LlferError(f"{path}: not a readable safetensors checkpoint ({e})") from None
        if meta.get("enhancer") not in (None, cls.name):
            raise LlferError(f"{path}: checkpoint is for enhancer {meta.get('enhancer')!r}, not {cls.name!r}")
        try:
            config = json.loads(meta.get("config", "{}"))
            if not isinstance(config, dict):
                raise ValueError
        except ValueError:
            raise LlferError(f"{path}: malformed enhancer config in its metadata") from None
        config.update(overrides)
        obj = cls(**config)
        try:
            missing, unexpected = obj.model.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise LlferError(f"{path}: weights do not fit {cls.name} ({str(e).splitlines()[0][:200]})") from None
        if missing or unexpected:
            raise LlferError(f"{path}: weights do not fit {cls.name} (missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
        obj.model.eval()
        return obj

    def init_from(self, path: str | os.PathLike[str]) -> None:
        """Initialise weights from a checkpoint file (for 'pretrained' fine-tuning)."""
        other = type(self).load(path)
        self.model.load_state_dict(other.model.state_dict())


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple of m (for U-Net-like nets); returns (x, (h, w))."""
    h, w = x.shape[-2:]
    ph, pw = (math.ceil(h / m) * m - h), (math.ceil(w / m) * m - w)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def _sort_metadata(path: str | os.PathLike[str]) -> None:
    """Rewrite a safetensors file's JSON header with its metadata keys sorted.

    safetensors writes the metadata from a Rust ``HashMap``, whose order changes from process to
    process, so two runs that save identical weights would give files with different bytes (and DVC
    hashes).  Only the header changes; the tensor offsets are relative to the data that follows it.
    """
    import json
    import struct

    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8 : 8 + n])
    if "__metadata__" in head:
        head["__metadata__"] = dict(sorted(head["__metadata__"].items()))
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
