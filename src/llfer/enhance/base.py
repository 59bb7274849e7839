"""Enhancer interfaces.

Every entry of ``ENHANCERS`` is a class built from its params (keyword
arguments) whose :meth:`Enhancer.enhance` maps uint8 images, N x H x W
(grayscale) or N x H x W x 3 (RGB), to uint8 images of the same shape.

Learned enhancers subclass :class:`LearnedEnhancer`: they build an
``nn.Module`` mapping float N x 3 x H x W in [0, 1] to the same (the differentiable tensor forward,
:meth:`LearnedEnhancer.forward`, that a joint enhancer + classifier cascade trains through), define their
training loss, and are trained by :meth:`LearnedEnhancer.fit` -- the one engine of
:mod:`llfer.train.engine` -- on pairs (degraded, clean) of uint8 arrays (unpaired methods ignore the clean
image).  :meth:`LearnedEnhancer.enhance` (uint8 numpy in and out) is the thin wrapper the ``enhance`` stage uses.
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
from ..metrics.quality import psnr as quality_psnr


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
    """The same random ``patch`` x ``patch`` window of each pair and a random horizontal flip, batched.

    One gather for the whole batch (no per-image Python loop); ``patch`` 0 or >= the image size keeps
    whole images (the default for 48 px faces).
    """
    n, _, h, w = low.shape
    if patch and patch < min(h, w):
        ys = torch.randint(0, h - patch + 1, (n,), generator=gen).to(low.device)
        xs = torch.randint(0, w - patch + 1, (n,), generator=gen).to(low.device)
        ar = torch.arange(patch, device=low.device)
        rows = (ys[:, None] + ar)[:, None, :, None]  # n x 1 x p x 1
        cols = (xs[:, None] + ar)[:, None, None, :]  # n x 1 x 1 x p
        b = torch.arange(n, device=low.device)[:, None, None, None]
        c = torch.arange(low.shape[1], device=low.device)[None, :, None, None]
        low, high = low[b, c, rows, cols], high[b, c, rows, cols]
    flip = (torch.rand(n, generator=gen) < 0.5).to(low.device)[:, None, None, None]
    return torch.where(flip, low.flip(-1), low), torch.where(flip, high.flip(-1), high)


def batch_to_float(xb: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W (C 1 or 3) -> float N x 3 x H x W in [0, 1] (gray repeated)."""
    x = xb.float().div_(255.0)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def psnr_batch(out: torch.Tensor, ref: torch.Tensor, gray: bool) -> torch.Tensor:
    """Per-image PSNR (dB) of float outputs in [0, 1], scored as the quality stage scores them: rounded to 8 bits
    (gray images: the channel mean, as :func:`from_tensor`), then :func:`llfer.metrics.quality.psnr`; capped at
    100 dB so that an exact reconstruction cannot turn a validation mean into infinity."""
    if gray:
        out, ref = out.mean(1, keepdim=True), ref.mean(1, keepdim=True)
    out8 = (out.clamp(0, 1) * 255).round()  # quality_psnr detaches
    ref8 = (ref * 255).round()
    return quality_psnr(out8, ref8, data_range=255.0, channels_last=False).clamp_max(100.0)


def gain_normalise(x: torch.Tensor, target_mean: float | None = 0.5) -> torch.Tensor:
    """Scale each image of a float N x 3 x H x W batch by one gain: the gain that brings the mean of its
    value channel (the channel maximum; the gray level of a gray image) to ``target_mean`` -- the
    ``gain`` enhancer's -- capped so that no pixel exceeds 1 (``min(target / mean, 1 / max)``: nothing is
    clipped, no information is lost).  An all-black image is left unchanged, and so is the batch when
    ``target_mean`` is None or 0 (a learned enhancer's ``input_gain: null``).  Parameter-free and
    differentiable.

    The learned enhancers apply it to their input (``input_gain``): 48 px faces darkened x0.1 span only
    0..25 of 255, so an untrained network sees a near-constant input and its first steps learn the mean
    face (the flat grey squares of a short run); with the input at a normal exposure the network's
    residual output starts at this gain and learns what a gain cannot (noise, gamma, contrast).  The cap
    matters for strong gamma darkening (``dark_gamma``), where the mean gain alone would send the
    highlights to several times the white level.
    """
    if not target_mean:
        return x
    v = x.amax(1, keepdim=True)
    mean, peak = v.mean(dim=(2, 3), keepdim=True), v.amax(dim=(2, 3), keepdim=True)
    gain = torch.minimum(target_mean / mean.clamp_min(1e-12), 1.0 / peak.clamp_min(1e-12))
    return x * torch.where(peak > 0, gain, torch.ones_like(gain))


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
    def fit(
        self,
        low: np.ndarray,
        high: np.ndarray,
        *,
        steps: int = 1000,
        batch_size: int = 64,
        patch: int = 0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: str = "cosine",
        warmup_steps: int = 0,
        grad_clip: float = 0.0,
        eval_every: int = 0,
        patience: int = 0,
        log_every: int | None = None,
        val: tuple[np.ndarray, np.ndarray] | None = None,
        val_metric: str | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        channels_last: bool = False,
        progress: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> list[dict[str, float]]:
        """Train on uint8 pairs with the one engine (:mod:`llfer.train.engine`); returns the history.

        Whole faces (``patch`` 0) in batches of ``batch_size`` from a seeded per-epoch permutation, a random
        flip per pair; ``val`` = (low, high) uint8 pairs scored every ``eval_every`` steps (and after the
        last): ``val_psnr`` (dB) and ``val_loss`` (this enhancer's loss).  History rows every ``log_every``
        steps (default: at validations, else 20 rows).  The best weights by
        ``val_metric`` (default ``val_psnr`` for paired methods, ``val_loss`` for zero-reference ones, which
        must not select on reference images) are kept; ``patience`` validations without a gain stop the run.
        The engine's result is kept in ``self.fit_result``.
        """
        from ..train.engine import EngineCfg, Trainer, images_to_tensor

        if len(low) == 0:
            raise LlferError("no training images for the enhancer")
        device = torch.device(device)
        low_t, high_t = images_to_tensor(low, device), images_to_tensor(high, device)
        cfg = EngineCfg(steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                        schedule=schedule, warmup_steps=warmup_steps, grad_clip=grad_clip, eval_every=eval_every,
                        log_every=log_every or eval_every or max(1, steps // 20), patience=patience, channels_last=channels_last)
        mem = torch.channels_last if channels_last else torch.contiguous_format

        def step(idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
            lo, hi = random_crops(batch_to_float(low_t[idx]), batch_to_float(high_t[idx]), patch, gen)
            return self.loss(lo.contiguous(memory_format=mem), hi.contiguous(memory_format=mem))

        evaluate = None
        if val is not None and len(val[0]):
            evaluate = self._validator(val, device, mem)
        metric = val_metric or ("val_psnr" if self.paired else "val_loss")
        trainer = Trainer(self.model, cfg, device=device, seed=seed, metric=metric,
                          mode="max" if metric == "val_psnr" else "min", checkpoint=checkpoint,
                          config={"task": "enhancer", "enhancer": self.name, "model": self.config},
                          progress=progress, desc=f"train {self.name}")
        self.fit_result = trainer.fit(step, len(low_t), evaluate, resume=resume)
        self.model.eval()
        return self.fit_result.history

    def _validator(self, val: tuple[np.ndarray, np.ndarray], device: torch.device,
                   mem: torch.memory_format, batch_size: int = 256) -> Any:
        """``evaluate()`` for the engine: mean PSNR of the outputs and mean loss on the validation pairs."""
        from ..train.engine import images_to_tensor

        lo_v, hi_v = images_to_tensor(val[0], device), images_to_tensor(val[1], device)
        gray = lo_v.shape[1] == 1

        def evaluate() -> dict[str, float]:
            self.model.eval()
            psnr, loss, n = 0.0, 0.0, 0
            with torch.no_grad():
                for i in range(0, len(lo_v), batch_size):
                    lo = batch_to_float(lo_v[i : i + batch_size]).contiguous(memory_format=mem)
                    hi = batch_to_float(hi_v[i : i + batch_size]).contiguous(memory_format=mem)
                    psnr += float(psnr_batch(self.forward(lo), hi, gray).sum())
                    loss += float(self.loss(lo, hi)[0]) * len(lo)
                    n += len(lo)
            return {"val_psnr": psnr / n, "val_loss": loss / n}

        return evaluate

    # -- inference ----------------------------------------------------------------
    def enhance(self, images: np.ndarray, batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
        """Enhance uint8 images in batches (channels_last: about 1.4x faster on the CPU for these nets).

        The weights are moved outside inference mode, so they stay trainable: the joint stage enhances its
        validation faces between training steps."""
        with torch.no_grad():
            self.model.to(device).eval()
            self.model.to(memory_format=torch.channels_last)
        gray = images.ndim == 3
        out = []
        with torch.inference_mode():
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
