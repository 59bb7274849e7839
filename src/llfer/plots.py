"""The pictures the stages draw: confusion matrix, training curves, sample grid, accuracy chart.

Figures are built with matplotlib's object API (``Figure``), so drawing needs no
GUI backend and leaves pyplot's global state alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def curves(history: list[dict[str, Any]], path: Path, title: str, x: str = "epoch") -> None:
    """Loss and accuracy per epoch, or per ``x`` (train and validation); a column logged on some rows only
    (validation every k steps) is drawn through the rows that hold it, with markers."""
    h = pd.DataFrame(history)
    fig = Figure(figsize=(8, 3))
    a, b = fig.subplots(1, 2)
    for ax, cols in ((a, ("train_loss", "val_loss")), (b, ("train_acc", "val_acc"))):
        for col in cols:
            if col in h:
                s = h[[x, col]].dropna()
                ax.plot(s[x], s[col], label=col, marker="o" if len(s) < len(h) else None, ms=3)
    a.set_xlabel(x), b.set_xlabel(x), a.set_ylabel("loss"), b.set_ylabel("accuracy")
    a.legend(fontsize=7), b.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def confusion(cm: np.ndarray, classes: Sequence[str], path: Path, title: str = "") -> None:
    """Heatmap with row-normalised percentages."""
    cm = np.asarray(cm, dtype=np.float64)
    pct = 100 * cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(classes)
    fig = Figure(figsize=(0.75 * k + 1.8, 0.75 * k + 1.2))
    ax = fig.subplots()
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if pct[i, j] > 60 else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if title:
        ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, label="% of row")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def sample_grid(cols: list[tuple[str, np.ndarray]], path: Path, title: str = "") -> None:
    """One column per (name, images): the same faces side by side."""
    n = len(cols[0][1])
    fig = Figure(figsize=(1.3 * len(cols), 1.3 * n + 0.4))
    axes = fig.subplots(n, len(cols), squeeze=False)
    for j, (name, imgs) in enumerate(cols):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(imgs[i], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def accuracy_chart(df: pd.DataFrame, path: Path) -> None:
    """Grouped bars: each run's test accuracy and its accuracy on every other test set (``on ...`` columns)."""
    cols = [c for c in df.columns if c == "test" or c.startswith("on ")]
    fig = Figure(figsize=(max(5, 1.2 * len(df) * max(1, len(cols)) / 3), 3.5))
    ax = fig.subplots()
    w = 0.8 / max(1, len(cols))
    x = np.arange(len(df))
    for j, c in enumerate(cols):
        ax.bar(x + j * w, df[c].astype(float).fillna(0).to_numpy(), w, label=c)
    ax.set_xticks(x + w * (len(cols) - 1) / 2, df["run"], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def robustness_curves(curves: dict[str, dict[str, dict[str, float]]], path: Path, title: str = "") -> None:
    """One panel per curve (``curve -> enhancer -> level -> accuracy``), one line per enhancer.

    Brightness and gamma axes run from light to dark, resolution from large to small."""
    names = list(curves)
    fig = Figure(figsize=(4.2 * len(names), 3.4))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, curve in zip(axes, names):
        for enh, by in curves[curve].items():
            x = np.array([float(k) for k in by])
            ax.plot(x, list(by.values()), marker="o", ms=3, label=enh)
        ax.set_xlabel({"brightness": "PIL brightness factor", "gamma": "gamma (eq. 14)",
                       "resolution": "face size (px)"}.get(curve, curve))
        if curve in ("brightness", "resolution"):
            ax.invert_xaxis()
        if curve == "brightness":
            ax.set_xscale("log")
        ax.set_ylim(0, 1)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
