"""Shared fixtures: small in-memory datasets written in the shared format."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]


def shared_datasets_dir() -> Path:
    """The folder of real dataset archives: $LLFER_DATA_DIR, else <repo>/data/raw."""
    env = os.environ.get("LLFER_DATA_DIR")
    return Path(env) if env else REPO / "data" / "raw"


def make_index(n: int, classes: list[str], splits=("train", "val", "test"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(classes)
    split = np.array([splits[i % len(splits)] for i in range(n)])
    rng.shuffle(split)
    return pd.DataFrame({
        "id": [f"img{i:05d}" for i in range(n)], "split": split, "label": labels,
        "label_name": [classes[k] for k in labels], "subject": [f"s{i % 10}" for i in range(n)],
        "source": [f"f{i}.png" for i in range(n)],
    })


@pytest.fixture
def tiny_prepared(tmp_path: Path) -> Path:
    """A 60-image 16x16 prepared dataset with 3 classes whose class is its mean brightness band."""
    from llfer.data.store import write_dataset

    classes = ["a", "b", "c"]
    idx = make_index(60, classes)
    rng = np.random.default_rng(1)
    base = np.array([60, 130, 200])[idx["label"].to_numpy()]
    imgs = np.clip(base[:, None, None] + rng.normal(0, 10, (60, 16, 16)), 0, 255).astype(np.uint8)
    return write_dataset(tmp_path / "prepared", imgs, idx, classes=classes)


@pytest.fixture(scope="session")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory):
    """A shrunk scratch copy of this repository after one `dvc repro` (tests/dvc_scratch.py), shared by the DVC tests.

    Attributes: ``root``, ``env``, ``output`` (what that first `dvc repro` printed, with every stage's
    imports listed by ``PYTHONPROFILEIMPORTTIME``) and ``lock`` (output path -> md5 after it).  A test
    that changes params or files puts them back.
    """
    from types import SimpleNamespace

    from dvc_scratch import lock_outs, make_scratch, run

    root, env = make_scratch(tmp_path_factory.mktemp("dvc") / "repo")
    out = run(["dvc", "repro"], root, {**env, "PYTHONPROFILEIMPORTTIME": "1"}).stdout
    return SimpleNamespace(root=root, env=env, output=out, lock=lock_outs(root))
