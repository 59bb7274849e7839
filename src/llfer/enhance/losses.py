"""Losses shared by the learned enhancers (and the joint enhancer + FER stage)."""

from __future__ import annotations

import torch


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss mean(sqrt((x - y)^2 + eps^2)) (MIRNet's training loss, eps = 1e-3)."""
    return torch.sqrt((x - y).pow(2) + eps * eps).mean()
