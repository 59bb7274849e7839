import numpy as np
import pandas as pd
import pytest

from llfer.data.store import Prepared, read_dataset, write_dataset
from llfer.errors import DataError
from conftest import make_index


def test_roundtrip(tmp_path):
    idx = make_index(12, ["x", "y"])
    imgs = np.arange(12 * 4 * 4, dtype=np.uint8).reshape(12, 4, 4)
    write_dataset(tmp_path / "d", imgs, idx, classes=["x", "y"], provenance={"src": "t"})
    ds = read_dataset(tmp_path / "d")
    assert isinstance(ds.images, np.memmap)
    np.testing.assert_array_equal(ds.images, imgs)
    assert ds.ids == idx["id"].tolist()
    assert ds.classes == ["x", "y"]
    assert ds.meta["counts"]["train"]["total"] == int((idx.split == "train").sum())
    assert ds.meta["provenance"] == {"src": "t"}
    assert len(ds.meta["images_sha256"]) == 64
    sub = ds.subset(ds.split_indices("val"))
    assert (sub.index["split"] == "val").all()


def test_rejects_bad_input(tmp_path):
    idx = make_index(4, ["x"])
    with pytest.raises(DataError, match="uint8"):
        write_dataset(tmp_path / "d", np.zeros((4, 4, 4), np.float32), idx, classes=["x"])
    with pytest.raises(DataError, match="index rows"):
        write_dataset(tmp_path / "d", np.zeros((3, 4, 4), np.uint8), idx, classes=["x"])
    idx2 = idx.copy()
    idx2.loc[1, "id"] = idx2.loc[0, "id"]
    with pytest.raises(DataError, match="duplicate image id"):
        write_dataset(tmp_path / "d", np.zeros((4, 4, 4), np.uint8), idx2, classes=["x"])
    assert not (tmp_path / "d").exists()
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "nope")


def test_failed_write_keeps_previous(tmp_path):
    idx = make_index(4, ["x"])
    write_dataset(tmp_path / "d", np.ones((4, 2, 2), np.uint8), idx, classes=["x"])
    with pytest.raises(DataError):
        write_dataset(tmp_path / "d", np.ones((4, 2, 2), np.uint8), idx.assign(label=5), classes=["x"])
    np.testing.assert_array_equal(read_dataset(tmp_path / "d").images, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporaries left


def test_prepared_writes_report_and_extras(tmp_path):
    idx = make_index(6, ["x", "y"])
    p = Prepared(images=np.zeros((6, 3, 3), np.uint8), index=idx, classes=["x", "y"],
                 extras={"soft_labels": np.ones((6, 2), np.float32)}, report={"corrupt": []})
    p.write(tmp_path / "d")
    ds = read_dataset(tmp_path / "d")
    assert ds.extras["soft_labels"].shape == (6, 2)
    assert (tmp_path / "d" / "report.json").exists()
