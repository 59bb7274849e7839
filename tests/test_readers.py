"""Dataset readers on small fixtures made here (no real data needed)."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from llfer.data import read_dataset
from llfer.data.common import canonical_class
from llfer.data.faces import read_folder, read_jaffe, read_kdef, read_rafdb
from llfer.data.fer import CLASSES_FERPLUS, ferplus_majority, parse_pixels, read_fer2013, read_ferplus
from llfer.data.lowlight import read_lol, read_unpaired
from llfer.data.store import CLASSES_FER2013
from llfer.errors import ConfigError, DataError
from llfer.registry import DATASETS

S = 6  # fixture image side


def img(seed: int, size: tuple[int, int] = (S, S), mode: str = "L") -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = size if mode == "L" else size + (3,)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def encode(a: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def pixels(a: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in a.reshape(-1))


USAGES = ["Training"] * 14 + ["PublicTest"] * 7 + ["PrivateTest"] * 7


def fer_rows():
    """28 rows: every class in every split; row 20 duplicates row 0 (train -> val)."""
    rows = []
    for i, u in enumerate(USAGES):
        a = img(1) if i == 20 else img(i + 1)
        rows.append((i % 7, pixels(a), u))
    return rows


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def check_fer(p, n=28):
    assert p.images.shape == (n, S, S) and p.images.dtype == np.uint8
    assert p.classes == CLASSES_FER2013
    assert list(p.index.columns) == ["id", "split", "label", "label_name", "subject", "source"]
    c = p.report["counts"]
    assert (c["train"]["total"], c["val"]["total"], c["test"]["total"]) == (14, 7, 7)
    assert all(v == 1 for v in c["val"]["per_class"].values())
    assert p.index["id"].is_unique


# --------------------------------------------------------------------------- classes


def test_canonical_class():
    for name, canon in [("anger", "angry"), ("AN", "angry"), ("Angry", "angry"), ("happiness", "happy"),
                        ("HA", "happy"), ("sadness", "sad"), ("Surprised", "surprise"), ("AF", "fear"),
                        ("afraid", "fear"), ("Disgusted", "disgust"), ("NE", "neutral"), ("contempt", "contempt")]:
        assert canonical_class(name) == canon
    with pytest.raises(DataError, match="unknown class name 'smirk'"):
        canonical_class("smirk")


def test_registry_and_option_names():
    for name in ("fer2013", "ferplus", "folder", "jaffe", "kdef", "rafdb", "lol", "unpaired"):
        assert name in DATASETS and DATASETS.entry(name).description
    with pytest.raises(ConfigError, match="gray_scale"):
        DATASETS.build("fer2013", source="x", gray_scale=True)


# --------------------------------------------------------------------------- fer2013 CSV flavours


def test_fer2013_csv(tmp_path):
    rows = fer_rows()
    src = write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], [list(r) for r in rows])
    p = read_fer2013(src)
    check_fer(p)
    ix = p.index.set_index("id")
    assert ix.loc["fer2013_00020", "split"] == "val"
    assert ix.loc["fer2013_00003", "label_name"] == CLASSES_FER2013[3]
    np.testing.assert_array_equal(p.images[p.index["id"].tolist().index("fer2013_00005")], img(6))
    d = p.report["duplicates"]
    assert d["across_splits"] == 1 and d["within_split"] == 0
    assert sorted(d["groups"][0]) == ["fer2013_00000", "fer2013_00020"]
    assert p.report["layout"].startswith("csv")


def test_icml_face_data_csv_leading_spaces(tmp_path):
    rows = fer_rows()
    src = write_csv(tmp_path / "icml_face_data.csv", ["emotion", " Usage", " pixels"], [[e, u, " " + px] for e, px, u in rows])
    p = read_fer2013(tmp_path)  # a folder holding the CSV
    check_fer(p)
    ref = read_fer2013(write_csv(tmp_path / "x" / "fer2013.csv", ["emotion", "pixels", "Usage"], [list(r) for r in rows]))
    np.testing.assert_array_equal(p.images, ref.images)
    assert p.index["id"].tolist() == ref.index["id"].tolist()
    assert src.exists()


def test_train_test_csv_pair(tmp_path):
    rows = fer_rows()
    write_csv(tmp_path / "train.csv", ["emotion", "pixels"], [[e, px] for e, px, u in rows if u == "Training"])
    write_csv(tmp_path / "test.csv", ["emotion", "pixels"], [[e, px] for e, px, u in rows if u != "Training"])
    for src in (tmp_path, tmp_path / "train.csv"):
        p = read_fer2013(src)
        check_fer(p)
        ix = p.index.set_index("id")
        assert ix.loc["fer2013_00014", "split"] == "val" and ix.loc["fer2013_00027", "split"] == "test"


def test_unlabelled_kaggle_test_csv_fails(tmp_path):
    write_csv(tmp_path / "train.csv", ["emotion", "pixels"], [[0, pixels(img(1))]])
    write_csv(tmp_path / "test.csv", ["pixels"], [[pixels(img(2))]])
    with pytest.raises(DataError, match=r"test\.csv.*no 'emotion' column"):
        read_fer2013(tmp_path)


def test_csv_bad_rows_reported_and_threshold(tmp_path):
    rows = [list(r) for r in fer_rows()]
    rows.append([3, "1 2 3", "Training"])  # not a square
    rows.append([9, pixels(img(99)), "Training"])  # bad label
    src = write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    p = read_fer2013(src, max_corrupt=0.1)
    check_fer(p)
    bad = p.report["corrupt"]
    assert len(bad) == 2 and "data row 28" in bad[0]["file"] and "square" in bad[0]["error"]
    with pytest.raises(DataError, match=r"2 of 30 files unreadable.*fer2013\.csv data row 28"):
        read_fer2013(src)  # default max_corrupt = 0.001


def test_parse_pixels():
    np.testing.assert_array_equal(parse_pixels("0 1 2 255"), np.array([[0, 1], [2, 255]], np.uint8))
    np.testing.assert_array_equal(parse_pixels(" 0  1 2 3 "), np.array([[0, 1], [2, 3]], np.uint8))
    for bad in ("0 1 2", "0 1 x 3", "0 1 2 256"):
        with pytest.raises(ValueError):
            parse_pixels(bad)


def test_rgb_and_size_options(tmp_path):
    src = write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], [list(r) for r in fer_rows()])
    p = read_fer2013(src, grayscale=False, size=8)
    assert p.images.shape == (28, 8, 8, 3)
    assert p.report["converted"] == 28 and p.report["resized"] == 28
    assert (p.images[..., 0] == p.images[..., 2]).all()


# --------------------------------------------------------------------------- fer2013 image folders


def fer_folder(root: Path) -> Path:
    """train/<class>/Training_*.png and test/<class>/{PublicTest,PrivateTest}_*.png; one cross-split duplicate."""
    for ci, c in enumerate(CLASSES_FER2013):
        put(root / "train" / c / f"Training_{ci}1.jpg", encode(img(100 + ci), "PNG"))
        put(root / "train" / c / f"Training_{ci}2.jpg", encode(img(200 + ci), "PNG"))
        put(root / "test" / c / f"PublicTest_{ci}3.jpg", encode(img(300 + ci), "PNG"))
        put(root / "test" / c / f"PrivateTest_{ci}4.jpg", encode(img(400 + ci), "PNG"))
    put(root / "test" / "happy" / "PrivateTest_99.jpg", encode(img(100), "PNG"))  # = train/angry/Training_01
    return root


def zip_dir(root: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for f in sorted(root.rglob("*")):
            zf.write(f, f.relative_to(root).as_posix())
    return out


def test_fer2013_image_folders_zip_and_folder(tmp_path):
    root = fer_folder(tmp_path / "fer")
    put(root / "train" / "sad" / "Training_77.jpg", b"not an image at all")  # corrupt
    z = zip_dir(root, tmp_path / "fer2013.zip")
    for src in (root, z):
        p = read_fer2013(src, max_corrupt=0.1)
        c = p.report["counts"]
        assert (c["train"]["total"], c["val"]["total"], c["test"]["total"]) == (14, 7, 8)
        assert c["test"]["per_class"]["happy"] == 2
        assert len(p.report["corrupt"]) == 1 and "Training_77.jpg" in p.report["corrupt"][0]["file"]
        d = p.report["duplicates"]
        assert d["across_splits"] == 1 and sorted(d["groups"][0]) == ["PrivateTest_99", "Training_01"]
        assert p.index["split"].tolist()[:14] == ["train"] * 14
        assert p.index.set_index("id").loc["PublicTest_33", "split"] == "val"
    with pytest.raises(DataError, match=r"1 of 30 files unreadable.*Training_77\.jpg"):
        read_fer2013(z)


def test_fer2013_jpeg_in_wrapper_folder_and_tar(tmp_path):
    root = tmp_path / "src"
    for ci, c in enumerate(CLASSES_FER2013):
        for k, pre in enumerate(["Training", "PublicTest", "PrivateTest"]):
            put(root / "fer2013" / ("train" if k == 0 else "test") / c / f"{pre}_{ci}{k}.jpg", encode(img(ci * 10 + k, (48, 48)), "JPEG"))
    tgz = tmp_path / "fer.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(root / "fer2013", arcname="fer2013")
    p = read_fer2013(tgz)
    assert p.images.shape == (21, 48, 48)
    assert p.report["counts"]["test"]["total"] == 7


def test_missing_class_folder_fails(tmp_path):
    root = fer_folder(tmp_path / "fer")
    for f in (root / "test" / "disgust").iterdir():
        f.unlink()
    (root / "test" / "disgust").rmdir()
    with pytest.raises(DataError, match=r"missing class folder\(s\) for disgust in split 'test'"):
        read_fer2013(root)


def test_empty_split_and_empty_class_folder_fail(tmp_path):
    root = fer_folder(tmp_path / "fer")
    (root / "val").mkdir()
    with pytest.raises(DataError, match=r"val: split folder has no images \(empty split\)"):
        read_fer2013(root)
    (root / "val").rmdir()
    for f in (root / "train" / "fear").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"train/fear: class folder has no images"):
        read_fer2013(root)


def test_zip_slip_member_refused(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("train/happy/Training_1.png", encode(img(1)))
        zf.writestr("../evil.png", encode(img(2)))
    with pytest.raises(DataError, match=r"evil\.zip.*'\.\./evil\.png'"):
        read_fer2013(z)


# --------------------------------------------------------------------------- ferplus


def test_ferplus_majority_protocol():
    votes = np.array([
        [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],  # 1 removed -> 4/9 not > half -> no majority
        [6, 0, 1, 1, 0, 0, 0, 0, 2, 0],  # -> 6/8 neutral
        [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],  # happy
        [0, 0, 0, 0, 0, 0, 0, 0, 8, 2],  # unknown
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 9],  # NF
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # all single votes -> nothing left
        [0, 0, 0, 0, 0, 0, 0, 6, 2, 2],  # contempt 6/10
    ])
    label, keep, soft = ferplus_majority(votes)
    assert label.tolist() == [-1, 0, 1, 8, 9, -1, 7]
    assert keep.tolist() == [False, True, True, False, False, False, True]
    np.testing.assert_allclose(soft[1], [1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(soft[0], np.array([4, 0, 0, 0, 3, 2, 0, 0]) / 9, rtol=1e-6)
    assert soft.dtype == np.float32


FERPLUS_VOTES = [  # (split folder, votes, expected label or None)
    ("FER2013Train", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0], "neutral"),
    ("FER2013Train", [0, 7, 3, 0, 0, 0, 0, 0, 0, 0], "happy"),
    ("FER2013Train", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None),
    ("FER2013Train", [2, 2, 2, 2, 2, 0, 0, 0, 0, 0], None),
    ("FER2013Valid", [0, 0, 9, 1, 0, 0, 0, 0, 0, 0], "surprise"),
    ("FER2013Valid", [0, 0, 0, 0, 0, 0, 0, 8, 2, 0], "contempt"),
    ("FER2013Test", [0, 0, 0, 8, 0, 0, 2, 0, 0, 0], "sad"),
    ("FER2013Test", [0, 0, 0, 0, 6, 4, 0, 0, 0, 0], "angry"),
]


def ferplus_tree(root: Path) -> Path:
    rows_by = {}
    for i, (folder, votes, _) in enumerate(FERPLUS_VOTES):
        name = f"fer{i:07d}.png"
        put(root / folder / name, encode(img(i + 1)))
        rows_by.setdefault(folder, []).append([name, "(0, 0, 48, 48)"] + votes)
    for folder, rows in rows_by.items():
        with open(root / folder / "label.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return root


def test_ferplus_label_csv_layout(tmp_path):
    root = ferplus_tree(tmp_path / "ferplus")
    z = zip_dir(root, tmp_path / "ferplus.zip")
    p = read_ferplus(z)
    assert p.classes == CLASSES_FERPLUS
    expect = [(f"fer{i:07d}", lab) for i, (_, _, lab) in enumerate(FERPLUS_VOTES) if lab]
    assert list(zip(p.index["id"], p.index["label_name"])) == expect
    assert p.index["split"].tolist() == ["train", "train", "val", "val", "test", "test"]
    sl = p.extras["soft_labels"]
    assert sl.shape == (6, 8) and sl.dtype == np.float32
    np.testing.assert_allclose(sl[1], [0, 0.7, 0.3, 0, 0, 0, 0, 0], rtol=1e-6)
    assert (sl.argmax(1) == p.index["label"].to_numpy()).all()
    dropped = p.report["dropped_by_protocol"]["train"]
    assert dropped == {"listed": 4, "no_majority": 1, "unknown": 0, "not_a_face": 1}
    out = p.write(tmp_path / "prepared")
    ds = read_dataset(out)
    assert ds.extras["soft_labels"].shape == (6, 8)
    assert json.loads((out / "report.json").read_text())["counts"]["val"]["per_class"]["contempt"] == 1


def test_ferplus_from_fer2013new_and_fer2013_csv(tmp_path):
    usage = {"FER2013Train": "Training", "FER2013Valid": "PublicTest", "FER2013Test": "PrivateTest"}
    header = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
              "contempt", "unknown", "NF"]
    new_rows, fer_rows_ = [], []
    for i, (folder, votes, _) in enumerate(FERPLUS_VOTES):
        new_rows.append([usage[folder], f"fer{i:07d}.png"] + votes)
        fer_rows_.append([0, pixels(img(i + 1)), usage[folder]])
    new_rows.append(["Training", ""] + [0] * 9 + [10])  # no face: empty name
    fer_rows_.append([0, pixels(img(50)), "Training"])
    write_csv(tmp_path / "fer2013new.csv", header, new_rows)
    write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], fer_rows_)
    p = read_ferplus(tmp_path)
    ref = read_ferplus(ferplus_tree(tmp_path / "gen"))
    assert p.index[["id", "split", "label"]].equals(ref.index[["id", "split", "label"]])
    np.testing.assert_array_equal(p.images, ref.images)
    np.testing.assert_array_equal(p.extras["soft_labels"], ref.extras["soft_labels"])


# --------------------------------------------------------------------------- folder, jaffe, kdef, rafdb


def test_folder_ckplus_subject_disjoint(tmp_path):
    root = tmp_path / "CK+48"
    names = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    for s in range(10):
        for ci, c in enumerate(names):
            put(root / c / f"S{s:03d}_00{ci}_0000001{s}.png", encode(img(s * 10 + ci, (8, 8))))
    put(root / "README.txt", b"ck+")
    p = read_folder(tmp_path, test_fraction=0.2, val_fraction=0.1, seed=1)
    assert p.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]
    assert p.report["subject_ids"] == "ck+" and p.index["subject"].str.match(r"S\d{3}").all()
    per_split = p.index.groupby("split")["subject"].apply(set)
    assert len(per_split["test"]) == 2 and len(per_split["val"]) == 1 and len(per_split["train"]) == 7
    assert not (per_split["test"] & per_split["train"]) and not (per_split["val"] & per_split["train"])
    assert p.report["carved_splits"]["method"] == "subject-disjoint"
    again = read_folder(tmp_path, test_fraction=0.2, val_fraction=0.1, seed=1)
    assert again.index.equals(p.index)
    allin = read_folder(root, test_fraction=0, val_fraction=0)
    assert set(allin.index["split"]) == {"train"}


def test_folder_with_splits_class_map_and_classes(tmp_path):
    root = tmp_path / "raf"
    for si, split in enumerate(("train", "test")):
        for code in ("1", "4", "7"):
            for k in range(4):
                put(root / "DATASET" / split / code / f"{split}_{code}{k}.png", encode(img(si * 100 + int(code) * 10 + k, (8, 8), "RGB")))
    p = read_folder(root, class_map={"1": "surprise", "4": "happiness", "7": "neutral"}, grayscale=False, val_fraction=0.25)
    assert p.classes == ["happy", "surprise", "neutral"]
    assert p.images.shape[1:] == (8, 8, 3)
    assert p.report["counts"]["test"]["total"] == 12
    assert "val" in p.report["counts"]  # carved from train (stratified: no subjects)
    with pytest.raises(DataError, match=r"DATASET/test/1: not a known class folder"):
        read_folder(root)
    p2 = read_folder(root, classes=["neutral", "happy", "surprise"], class_map={"1": "surprise", "4": "happy", "7": "neutral"},
                     val_fraction=0)
    assert p2.classes == ["neutral", "happy", "surprise"] and set(p2.index["split"]) == {"train", "test"}
    with pytest.raises(DataError, match=r"missing class folder\(s\) for fear"):
        read_folder(root, classes=["neutral", "happy", "surprise", "fear"], class_map={"1": "surprise", "4": "happy", "7": "neutral"})


def test_jaffe_names(tmp_path):
    codes = ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    subjects = ["KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM"]
    n = 0
    for s in subjects:
        for c in codes:
            n += 1
            put(tmp_path / "jaffe" / f"{s}.{c}1.{n}.tiff", encode(img(n, (16, 16)), "TIFF"))
    put(tmp_path / "jaffe" / "README", b"x")
    p = read_jaffe(tmp_path, size=8)
    assert p.images.shape == (70, 8, 8) and p.report["resized"] == 70
    ix = p.index.set_index("id")
    assert ix.loc["KA.AN1.1", "subject"] == "KA" and ix.loc["KA.AN1.1", "label_name"] == "angry"
    assert ix.loc["KA.FE1.3", "label_name"] == "fear"
    assert p.index.groupby("subject")["split"].nunique().max() == 1
    assert p.report["counts"]["test"]["total"] == 7


def test_kdef_names_and_poses(tmp_path):
    codes = ["AF", "AN", "DI", "HA", "NE", "SA", "SU"]
    for sess in "AB":
        for person in ("F01", "M02", "F03", "M04", "F05"):
            for c in codes:
                for pose in ("S", "HL", "FR"):
                    name = f"{sess}{person}{c}{pose}.JPG"
                    put(tmp_path / "KDEF" / f"{sess}{person}" / name, encode(img(len(name) + ord(c[0]) + ord(pose[-1]), (10, 8), "RGB"), "JPEG"))
    p = read_kdef(tmp_path, poses=["S"], test_fraction=0.2, val_fraction=0.2)
    assert len(p.index) == 2 * 5 * 7
    assert p.images.shape == (70, 10, 8)
    ix = p.index.set_index("id")
    assert ix.loc["AF01AFS", "subject"] == "F01" and ix.loc["AF01AFS", "label_name"] == "fear"
    assert p.index.groupby("subject")["split"].nunique().max() == 1  # both sessions of a person together
    assert p.report["converted"] == 70
    assert len(read_kdef(tmp_path, val_fraction=0, test_fraction=0).index) == 210
    with pytest.raises(ConfigError, match="unknown KDEF pose"):
        read_kdef(tmp_path, poses=["X"])


def test_rafdb_list_and_aligned(tmp_path):
    root = tmp_path / "basic"
    lines = []
    for split, n in (("train", 21), ("test", 7)):
        for k in range(n):
            name = f"{split}_{k + 1:05d}.jpg"
            lines.append(f"{name} {k % 7 + 1}")
            put(root / "Image" / "aligned" / f"{split}_{k + 1:05d}_aligned.jpg", encode(img(k + (0 if split == 'train' else 50), (12, 12), "RGB"), "JPEG"))
    put(root / "EmoLabel" / "list_patition_label.txt", ("\n".join(lines) + "\n").encode())
    p = read_rafdb(root, size=12, val_fraction=1 / 3)
    assert p.report["counts"]["test"]["total"] == 7
    assert p.report["counts"]["val"]["total"] == 7 and p.report["counts"]["train"]["total"] == 14
    ix = p.index.set_index("id")
    assert ix.loc["train_00001", "label_name"] == "surprise"
    assert ix.loc["test_00006", "label_name"] == "angry"
    assert ix.loc["test_00006", "source"] == "Image/aligned/test_00006_aligned.jpg"
    with pytest.raises(DataError, match="none of the images listed.*original names"):
        read_rafdb(root, aligned=False)
    (root / "Image" / "aligned" / "train_00002_aligned.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of 28 files unreadable.*train_00002_aligned\.jpg: missing file"):
        read_rafdb(root)


# --------------------------------------------------------------------------- low light


def test_lol_paired(tmp_path):
    root = tmp_path / "LOLdataset"
    for split, names in (("our485", ["2", "5", "7"]), ("eval15", ["1", "22"])):
        for n in names:
            hi = img(int(n), (6, 9), "RGB")
            put(root / split / "high" / f"{n}.png", encode(hi))
            put(root / split / "low" / f"{n}.png", encode(hi // 10))
    put(root / "our485" / "low" / "99.png", encode(img(9, (6, 9), "RGB")))  # no partner
    p = read_lol(root)
    assert p.images.shape == (5, 6, 9, 3) and p.extras["low"].shape == (5, 6, 9, 3)
    assert p.classes == ["none"]
    assert p.index["split"].tolist() == ["train"] * 3 + ["test"] * 2
    np.testing.assert_array_equal(p.extras["low"], p.images // 10)
    assert p.report["unpaired_count"] == 1


def test_lol_v2_names(tmp_path):
    root = tmp_path / "LOL-v2" / "Real_captured"
    for split in ("Train", "Test"):
        for k in range(2):
            put(root / split / "Normal" / f"normal{k:05d}.png", encode(img(k, (4, 4), "RGB")))
            put(root / split / "Low" / f"low{k:05d}.png", encode(img(k + 9, (4, 4), "RGB")))
    p = read_lol(tmp_path, grayscale=True)
    assert p.images.shape == (4, 4, 4) and set(p.index["split"]) == {"train", "test"}


def test_unpaired_mixed_sizes(tmp_path):
    for i, hw in enumerate([(6, 8), (6, 8), (10, 12)]):
        put(tmp_path / "DICM" / f"{i:02d}.jpg", encode(img(i, hw, "RGB"), "JPEG"))
    put(tmp_path / "LIME" / "01.bmp", encode(img(7, (6, 8), "RGB"), "BMP"))
    p = read_unpaired(tmp_path)
    assert p.images.shape == (4, 6, 8, 3) and p.report["resized"] == 1
    assert set(p.index["split"]) == {"test"} and p.index["id"].is_unique
    assert read_unpaired(tmp_path, size=[5, 7]).images.shape == (4, 5, 7, 3)
