import numpy as np
import pytest

from llfer.errors import ConfigError, DataError
from llfer.inputs import InputLoader, Roots, parse_spec

V = ["dark_pil", "dark_gamma", "lowres_12"]


def test_parse_spec():
    assert parse_spec("clean", V, ["dark_pil"]) == ("clean", [])
    assert parse_spec("he", V, ["dark_pil"]) == ("clean", ["he"])
    assert parse_spec("dark_pil+he", V, ["dark_pil"]) == ("dark_pil", ["he"])
    assert parse_spec("enhanced:dark_pil+gcn", V, ["dark_pil"]) == ("enhanced:dark_pil", ["gcn"])
    with pytest.raises(ConfigError, match="unknown source or preprocessor 'darkk'"):
        parse_spec("darkk", V, ["dark_pil"])
    with pytest.raises(ConfigError, match="unknown preprocessor 'nope'"):
        parse_spec("clean+nope", V, ["dark_pil"])


def test_loader_applies_preprocessors(tiny_prepared, tmp_path):
    roots = Roots(prepared=tiny_prepared, degraded=tmp_path / "degraded")
    ld = InputLoader(roots, V, ["dark_pil"], seed=0)
    x, y, ids = ld.load("clean", "train", train=True)
    assert x.dtype == np.uint8 and x.shape[1:] == (16, 16) and len(x) == len(y) == len(ids)
    xh, yh, _ = ld.load("he", "train", train=True)
    np.testing.assert_array_equal(y, yh)
    assert xh.max() == 255 and not np.array_equal(x, xh)
    x3, _, _ = ld.load("sobel3", ["train", "val"], train=False)
    assert x3.shape[-1] == 3
    with pytest.raises(DataError, match="run the stage that makes it"):
        ld.load("dark_pil", "train", train=True)


def test_loader_extra_follows_the_load_order(tmp_path):
    from llfer.data.store import write_dataset
    from llfer.errors import ConfigError

    from conftest import make_index

    idx = make_index(30, ["a", "b", "c"])
    imgs = np.arange(30, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    soft = np.eye(3, dtype=np.float32)[idx["label"].to_numpy()] * 0.5 + 0.5 / 3
    d = write_dataset(tmp_path / "p", imgs, idx, classes=["a", "b", "c"], extras={"soft_labels": soft})
    ld = InputLoader(Roots(prepared=d, degraded=tmp_path / "degraded"), V, ["dark_pil"], seed=0)
    for split in ("train", ["val", "test"]):
        x, y, _ = ld.load("clean", split, train=False)
        s = ld.extra("soft_labels", split, "fer.train.soft_labels")
        np.testing.assert_array_equal(s, soft[x[:, 0, 0]])  # pixel value = row number
        np.testing.assert_array_equal(s.argmax(1), y)
    with pytest.raises(ConfigError, match="fer.train.soft_labels: .* has no votes.npy"):
        ld.extra("votes", "train", "fer.train.soft_labels")
