"""Readers on the real archives in $LLFER_DATA_DIR (skipped when absent).

The expected counts are those the datasets' README gives.  The datasets
folder comes from ``LLFER_DATA_DIR`` or, by default, ``<repo>/data/raw``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from llfer.data import read_dataset
from llfer.data.fer import CLASSES_FERPLUS, read_fer2013, read_ferplus
from llfer.data.store import CLASSES_FER2013

DATA_DIR = Path(os.environ.get("LLFER_DATA_DIR") or Path(__file__).resolve().parents[1] / "data" / "raw")

pytestmark = pytest.mark.realdata


def archive(name: str) -> Path:
    p = DATA_DIR / name
    if not p.is_file():
        pytest.skip(f"real dataset {name} not found in {DATA_DIR} (set LLFER_DATA_DIR)")
    return p


FER2013_TRAIN = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830, "surprise": 3171}
FER2013_TEST = {"angry": 958, "disgust": 111, "fear": 1024, "happy": 1774, "neutral": 1233, "sad": 1247, "surprise": 831}

# README table: kept, neutral, happiness, surprise, sadness, anger, disgust, fear, contempt
FERPLUS = {
    "train": (25045, [8733, 7284, 3136, 3022, 2098, 116, 536, 120]),
    "val": (3191, [1180, 862, 411, 348, 289, 25, 60, 16]),
    "test": (3137, [1083, 892, 394, 382, 269, 16, 86, 15]),
}


def test_fer2013_zip_counts(tmp_path):
    p = read_fer2013(archive("fer2013.zip"))
    c = p.report["counts"]
    assert c["train"]["total"] == 28709 and c["train"]["per_class"] == FER2013_TRAIN
    assert c["val"]["total"] == 3589 and c["test"]["total"] == 3589  # PublicTest / PrivateTest
    both = {k: c["val"]["per_class"][k] + c["test"]["per_class"][k] for k in CLASSES_FER2013}
    assert both == FER2013_TEST
    assert p.images.shape == (35887, 48, 48) and p.images.dtype == np.uint8
    assert p.report["corrupt"] == [] and p.report["resized"] == 0
    assert p.index["id"].is_unique
    assert p.index["id"].str.match(r"^(Training|PublicTest|PrivateTest)_").all()
    assert (p.index["split"] == "val").sum() == p.index["id"].str.startswith("PublicTest").sum()
    assert p.report["duplicates"]["groups_total"] > 0  # FER2013 has exact duplicates
    out = p.write(tmp_path / "fer2013")
    ds = read_dataset(out)
    assert ds.meta["counts"] == c and ds.classes == CLASSES_FER2013


def test_ferplus_zip_counts(tmp_path):
    p = read_ferplus(archive("ferplus.zip"))
    assert p.classes == CLASSES_FERPLUS
    c = p.report["counts"]
    for split, (kept, per_class) in FERPLUS.items():
        assert c[split]["total"] == kept
        assert [c[split]["per_class"][k] for k in CLASSES_FERPLUS] == per_class
    assert p.images.shape == (31373, 48, 48)
    sl = p.extras["soft_labels"]
    assert sl.shape == (31373, 8) and np.allclose(sl.sum(1), 1, atol=1e-5)
    assert (sl.argmax(1) == p.index["label"].to_numpy()).all()
    listed = {s: d["listed"] for s, d in p.report["dropped_by_protocol"].items()}
    assert listed == {"train": 28558, "val": 3579, "test": 3573}
    out = p.write(tmp_path / "ferplus")
    assert read_dataset(out).extras["soft_labels"].shape == (31373, 8)
