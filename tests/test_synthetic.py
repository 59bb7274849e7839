"""The embedded synthetic FACS face set (llfer.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from llfer.data.store import CLASSES_FER2013, INDEX_COLUMNS, Prepared, read_dataset
from llfer.data.synthetic import AU_LIST, AU_NAMES, make_synthetic, read_synthetic, render_faces, synthetic_layout
from llfer.registry import DATASETS


@pytest.fixture(scope="module")
def small() -> Prepared:
    # 40 subjects x 7 images: every subject shows every class once
    return read_synthetic(num_images=280, num_subjects=40, seed=3)


@pytest.fixture(scope="module")
def learn_set() -> Prepared:
    return read_synthetic(num_images=1050, num_subjects=75, seed=1)


def test_registered_with_short_description():
    entry = DATASETS.entry("synthetic")
    assert entry.obj is read_synthetic
    assert entry.description == "Embedded procedurally drawn FACS-based face set (no download)."
    assert entry.defaults["num_images"] == 4200 and entry.defaults["size"] == 48


def test_shapes_dtype_and_index(small: Prepared):
    assert small.images.shape == (280, 48, 48) and small.images.dtype == np.uint8
    idx = small.index
    assert list(idx.columns) == INDEX_COLUMNS
    assert idx["id"].iloc[0] == "syn_000000" and idx["id"].iloc[123] == "syn_000123"
    assert idx["id"].is_unique
    assert small.classes == CLASSES_FER2013
    assert (idx["label_name"] == [CLASSES_FER2013[i] for i in idx["label"]]).all()
    assert set(idx["split"]) == {"train", "val", "test"}
    assert (idx["source"] == "synthetic").all()
    assert small.provenance["generator"] == "synthetic" and small.provenance["num_images"] == 280
    aus = small.extras["action_units"]
    assert aus.shape == (280, len(AU_LIST)) and aus.dtype == np.float32
    assert aus.min() >= 0 and aus.max() <= 1
    assert small.report["action_units"] == list(AU_NAMES)
    # images use a real range of grey levels, not blobs
    assert small.images.std() > 25 and np.median(small.images.reshape(280, -1).std(1)) > 15


def test_other_size_and_scale():
    p = read_synthetic(num_images=14, size=32, render_scale=2, num_subjects=5)
    assert p.images.shape == (14, 32, 32) and p.images.dtype == np.uint8


def test_deterministic_for_a_seed(small: Prepared):
    again = read_synthetic(num_images=280, num_subjects=40, seed=3)
    assert again.images.tobytes() == small.images.tobytes()
    assert again.index.equals(small.index)
    other = read_synthetic(num_images=280, num_subjects=40, seed=4)
    assert other.images.tobytes() != small.images.tobytes()


def test_image_independent_of_num_images():
    a, ia, _ = make_synthetic(21, num_subjects=10, seed=7)
    b, ib, _ = make_synthetic(42, num_subjects=10, seed=7)
    assert np.array_equal(a, b[:21])
    assert ia[["id", "label", "subject"]].equals(ib[["id", "label", "subject"]].iloc[:21])
    # and of the batch it is rendered in
    subjects, labels, _ = synthetic_layout(42, 10, 7, 0.15, 0.15)
    one, _ = render_faces(labels[[30]], subjects[[30]], [30], seed=7)
    assert np.array_equal(one[0], b[30])


def test_balanced_classes_in_every_split(small: Prepared):
    idx = small.index
    for split, g in idx.groupby("split"):
        counts = np.bincount(g["label"], minlength=7)
        assert (counts > 0).all(), split
        assert counts.min() == counts.max(), (split, counts)  # one image per class per subject
    big = synthetic_layout(4200, 300, 0, 0.15, 0.15)
    counts = np.bincount(big[1], minlength=7)
    assert counts.min() == counts.max() == 600


def test_subjects_disjoint_across_splits(small: Prepared):
    idx = small.index
    per_split = {s: set(g["subject"]) for s, g in idx.groupby("split")}
    assert not per_split["train"] & per_split["val"]
    assert not per_split["train"] & per_split["test"]
    assert not per_split["val"] & per_split["test"]
    assert idx.groupby("subject")["split"].nunique().max() == 1
    # split sizes follow the fractions (by subject)
    n_subj = {s: len(v) for s, v in per_split.items()}
    assert n_subj == {"test": 6, "val": 6, "train": 28}


def test_layout_validation():
    with pytest.raises(ValueError):
        synthetic_layout(10, 5, 0, 0.6, 0.5)
    with pytest.raises(ValueError):
        synthetic_layout(10, 0, 0, 0.1, 0.1)
    subjects, labels, splits = synthetic_layout(0, 5, 0, 0.1, 0.1)
    assert len(subjects) == len(labels) == len(splits) == 0


def test_action_units_follow_facs_prototypes(small: Prepared):
    aus = small.extras["action_units"]
    lab = small.index["label"].to_numpy()
    col = {n: i for i, n in enumerate(AU_LIST)}

    def mean(cls: str, au: int) -> float:
        return float(aus[lab == CLASSES_FER2013.index(cls), col[au]].mean())

    assert mean("happy", 12) > 0.4 and mean("happy", 6) > 0.4
    assert mean("sad", 1) > 0.4 and mean("sad", 4) > 0.4 and mean("sad", 15) > 0.4
    assert mean("surprise", 26) > 0.4 and mean("surprise", 5) > 0.4
    assert mean("angry", 23) > 0.4 and mean("fear", 20) > 0.4 and mean("disgust", 9) > 0.4
    assert mean("neutral", 12) < 0.15 and mean("neutral", 4) < 0.15


def test_write_and_read_back(small: Prepared, tmp_path):
    small.write(tmp_path / "prepared")
    ds = read_dataset(tmp_path / "prepared")
    assert np.array_equal(np.asarray(ds.images), small.images)
    assert ds.ids == small.index["id"].tolist()
    assert ds.meta["classes"] == CLASSES_FER2013
    assert ds.meta["provenance"]["generator"] == "synthetic"
    assert ds.extras["action_units"].shape == (280, len(AU_LIST))


def _hog_features(images: np.ndarray) -> np.ndarray:
    from skimage.feature import hog

    return np.stack([hog(im, orientations=9, pixels_per_cell=(6, 6), cells_per_block=(2, 2)) for im in images])


def test_classes_are_learnable(learn_set: Prepared):
    """HOG + a linear classifier, trained on ~740 images, is far above chance (1/7) on unseen subjects."""
    from sklearn.linear_model import RidgeClassifier

    idx = learn_set.index
    feats = _hog_features(learn_set.images)
    y = idx["label"].to_numpy()
    tr = (idx["split"] == "train").to_numpy()
    te = ~tr
    clf = RidgeClassifier(alpha=10.0).fit(feats[tr], y[tr])
    acc = float((clf.predict(feats[te]) == y[te]).mean())
    assert acc > 0.4, acc
