"""Readers for FER2013 (challenge CSV or image-folder archive) and FER+ (majority-vote labels)."""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError
from ..registry import DATASETS
from .common import Builder, is_image_name, sqrt_side, try_canonical_class, unique_ids
from .faces import check_class_folders, find_class_tree
from .sources import SourceTree, open_tree
from .store import CLASSES_FER2013, Prepared

#: FER2013 ``Usage`` values -> llfer splits (the challenge split is kept).
USAGE_SPLITS = {"training": "train", "publictest": "val", "privatetest": "test"}
_USAGE_NAMES = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
_PREFIX_RE = re.compile(r"^(Training|PublicTest|PrivateTest)_", re.IGNORECASE)

#: FER+ columns in ``fer2013new.csv`` / ``label.csv`` order, and the 8 emotions kept.
FERPLUS_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
CLASSES_FERPLUS = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
FERPLUS_FOLDERS = {"fer2013train": "train", "fer2013valid": "val", "fer2013test": "test"}
_FERPLUS_USAGE_FOLDER = {"training": "FER2013Train", "publictest": "FER2013Valid", "privatetest": "FER2013Test"}


def _usage_split(u: str) -> str | None:
    return USAGE_SPLITS.get(u.strip().lower())


# --------------------------------------------------------------------------- fer2013


@DATASETS.register("fer2013")
def read_fer2013(
    source: str | Path,
    *,
    grayscale: bool = True,
    size: int | list[int] | None = None,
    max_corrupt: float = 0.001,
) -> Prepared:
    """FER2013: challenge CSV (fer2013.csv, icml_face_data.csv, train.csv+test.csv) or image-folder archive.

    Keeps the challenge split: Training -> train, PublicTest -> val, PrivateTest
    -> test (from the CSV ``Usage`` column or the image-name prefix).  Native
    size 48x48 grayscale; 7 classes in the challenge order.
    """
    opts = {"grayscale": grayscale, "size": size, "max_corrupt": max_corrupt}
    b = Builder(reader="fer2013", source=source, grayscale=grayscale, size=size, max_corrupt=max_corrupt, options=opts)
    path = Path(source)
    only = None
    if path.is_file() and path.suffix.lower() == ".csv":
        only = [path.name] + (["test.csv"] if path.name.lower() == "train.csv" else [])
        path = path.parent
    with open_tree(path, only=only) as tree:
        csvs = _fer2013_csvs(tree)
        if csvs is not None:
            layout, seen = _read_fer2013_csv(b, tree, csvs)
            missing = [u for u, sp in _USAGE_NAMES.items() if sp not in seen]
            if missing:
                raise DataError(f"{tree.where(csvs[-1])}: no {' or '.join(missing)} rows: the FER2013 challenge "
                                f"split{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(_USAGE_NAMES[u] for u in missing)} would be empty (truncated file?)")
            return b.finish(CLASSES_FER2013, layout=layout, expected_splits=sorted(seen))
        return _read_fer2013_folders(b, tree)


def _fer2013_csvs(tree: SourceTree) -> list[str] | None:
    for name in ("fer2013.csv", "icml_face_data.csv"):
        hits = tree.find(name)
        if hits:
            return [hits[0]]
    train = tree.find("train.csv")
    if train:
        folder = train[0].rpartition("/")[0]
        test = [t for t in tree.find("test.csv") if t.rpartition("/")[0] == folder]
        return [train[0]] + test[:1]
    others = [f for f in tree.files if f.lower().endswith(".csv")]
    if len(others) == 1 and not any(is_image_name(f) for f in tree.files):
        return others
    return None


def _rows(tree: SourceTree, name: str) -> Iterator[tuple[int, list[str], list[str]]]:
    """(data row number, header, row) for each CSV row; header names stripped and lower-cased."""
    with tree.open_text(name) as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{tree.where(name)}: empty CSV file") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{tree.where(name)}: unreadable CSV ({e})") from None
        i = -1
        try:
            for i, row in enumerate(reader):
                yield i, header, row
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{tree.where(name)}: unreadable CSV after data row {i} ({e})") from None


#: Smallest side a CSV pixel row may have: fewer values are a malformed file (e.g. one pixel per row), not a face.
MIN_CSV_SIDE = 4


def parse_pixels(text: str, min_side: int = 1) -> np.ndarray:
    """A FER2013 ``pixels`` string (space-separated 0..255 values, a square count) -> HxW uint8."""
    t = text.strip()
    a = None
    if hasattr(np, "fromstring"):  # fast path: ~5x faster than split(); stops silently at junk
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                a = np.fromstring(t, dtype=np.int32, sep=" ")
            except ValueError:
                a = None
        if a is not None and a.size != t.count(" ") + 1:
            a = None  # junk or irregular spacing: take the strict path
    if a is None:
        try:
            a = np.array([int(x) for x in t.split()], dtype=np.int64)
        except ValueError:
            raise ValueError("pixels are not space-separated integers") from None
    side = sqrt_side(a.size)
    if side is None:
        raise ValueError(f"{a.size} pixel values is not a square image")
    if side < min_side:
        raise ValueError(f"{a.size} pixel value(s): a {side}x{side} image is too small for a face "
                         f"(at least {min_side}x{min_side}; is the pixels column split over rows?)")
    if a.min() < 0 or a.max() > 255:
        raise ValueError("pixel values outside 0..255")
    return a.astype(np.uint8).reshape(side, side)


def _read_fer2013_csv(b: Builder, tree: SourceTree, csvs: list[str]) -> tuple[str, set[str]]:
    seen: set[str] = set()
    base = 0  # row numbers continue from train.csv into test.csv, matching fer2013.csv (and FER+ names)
    layouts = []
    for k, name in enumerate(csvs):
        fname = name.rsplit("/", 1)[-1]
        where = tree.where(name)
        rows = list(_rows(tree, name)) if k == 1 else _rows(tree, name)
        n_rows = len(rows) if isinstance(rows, list) else None
        header_checked = False
        count = 0
        for i, header, row in rows:
            if not header_checked:
                header_checked = True
                if "pixels" not in header:
                    raise DataError(f"{where}: no 'pixels' column (columns: {', '.join(header)})")
                if "emotion" not in header:
                    raise DataError(f"{where}: no 'emotion' column: unlabelled (the Kaggle test.csv); "
                                    "use fer2013.csv or icml_face_data.csv instead")
                ie, ip = header.index("emotion"), header.index("pixels")
                iu = header.index("usage") if "usage" in header else None
                layouts.append(f"{fname} ({', '.join(header)})")
            count += 1
            rowid = base + i
            file = f"{where} data row {i}"
            if len(row) != len(header):
                b.add_corrupt(file, f"{len(row)} fields, expected {len(header)}")
                continue
            if iu is not None:
                split = _usage_split(row[iu])
                if split is None:
                    b.add_corrupt(file, f"unknown Usage {row[iu]!r}")
                    continue
            elif k == 0:
                split = "train"
            else:  # test.csv without Usage: PublicTest rows then PrivateTest rows, in equal halves
                split = "val" if i < (n_rows or 0) // 2 else "test"
            seen.add(split)
            try:
                label = int(row[ie])
                if not 0 <= label < len(CLASSES_FER2013):
                    raise ValueError
            except ValueError:
                b.add_corrupt(file, f"emotion {row[ie]!r} is not 0..6")
                continue
            try:
                arr = parse_pixels(row[ip], MIN_CSV_SIDE)
            except ValueError as e:
                b.add_corrupt(file, str(e))
                continue
            b.add(arr, file=file, id=f"fer2013_{rowid:05d}", split=split, label=label,
                  label_name=CLASSES_FER2013[label], source=f"{fname}:{i}")
        if not header_checked:
            raise DataError(f"{where}: CSV has a header but no rows")
        base += count
    return "csv: " + " + ".join(layouts), seen


def _fer2013_resolver(name: str) -> str | None:
    c = try_canonical_class(name)
    return c if c in CLASSES_FER2013 else None


def _read_fer2013_folders(b: Builder, tree: SourceTree) -> Prepared:
    if not any(is_image_name(f) for f in tree.files):
        raise DataError(f"{tree.label}: no FER2013 CSV (fer2013.csv, icml_face_data.csv, train.csv) "
                        "and no image folders found")
    ct = find_class_tree(tree, _fer2013_resolver)
    check_class_folders(tree, ct, CLASSES_FER2013)
    members = [m for m, _, _ in ct.items]
    ids = unique_ids(members)
    cidx = {c: i for i, c in enumerate(CLASSES_FER2013)}
    prefixed = 0
    expected = set()
    for (m, split, cls), i in zip(ct.items, ids):
        mt = _PREFIX_RE.match(m.rsplit("/", 1)[-1])
        if mt:
            split = USAGE_SPLITS[mt.group(1).lower()]
            prefixed += 1
        expected.add(split or "train")
        try:
            data = tree.read(m)
        except Exception as e:  # noqa: BLE001
            b.add_corrupt(tree.where(m), f"{type(e).__name__}: {e}")
            continue
        b.add(data, file=tree.where(m), id=i, split=split or "train", label=cidx[cls], label_name=cls, source=m)
    b.report["split_from"] = (f"file-name prefix (Training/PublicTest/PrivateTest) for {prefixed} of {len(members)} images; "
                              "split folders otherwise")
    b.report["ignored_files"] = len(ct.ignored)
    return b.finish(CLASSES_FER2013, layout="image folders" + (" (split/class)" if ct.has_splits else " (class)"),
                    expected_splits=sorted(expected))


# --------------------------------------------------------------------------- ferplus


def ferplus_majority(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The FER+ "majority" protocol on N x 10 vote counts.

    Single votes are outliers (set to 0); the label is the class with the most
    remaining votes if it has more than half of the remaining total, else none.
    Returns ``label`` (N, -1 for no majority, 8/9 for unknown/NF), ``keep``
    (label in 0..7) and ``soft`` (N x 8 float32 distribution of the remaining
    emotion votes, zeros where none remain).
    """
    v = np.asarray(votes, dtype=np.float64).copy()
    v[v <= 1.0] = 0.0
    total = v.sum(axis=1)
    top = v.argmax(axis=1)
    mx = v.max(axis=1)
    label = np.where((mx > 0.5 * total) & (total > 0), top, -1)
    keep = (label >= 0) & (label < 8)
    emo = v[:, :8]
    s = emo.sum(axis=1, keepdims=True)
    soft = np.divide(emo, s, out=np.zeros_like(emo), where=s > 0).astype(np.float32)
    return label, keep, soft


@DATASETS.register("ferplus")
def read_ferplus(
    source: str | Path,
    *,
    grayscale: bool = True,
    size: int | list[int] | None = None,
    max_corrupt: float = 0.001,
) -> Prepared:
    """FER+: FER2013{Train,Valid,Test}/ images + label.csv (or fer2013new.csv), 8 classes by majority vote.

    Labels follow the FER+ "majority" protocol (single votes dropped; the top
    emotion needs more than half of the remaining votes; unknown / not-a-face /
    no-majority images are dropped).  ``extras["soft_labels"]`` holds the N x 8
    vote distribution after the outlier removal.  Also reads fer2013new.csv
    together with the original fer2013.csv (pixels) when no image folders exist.
    """
    opts = {"grayscale": grayscale, "size": size, "max_corrupt": max_corrupt}
    b = Builder(reader="ferplus", source=source, grayscale=grayscale, size=size, max_corrupt=max_corrupt, options=opts)
    with open_tree(source) as tree:
        label_csvs = {}
        for f in tree.find("label.csv"):
            parent = f.rsplit("/", 2)[-2] if "/" in f else ""
            split = FERPLUS_FOLDERS.get(parent.lower())
            if split and split not in label_csvs:
                label_csvs[split] = f
        new = tree.find("fer2013new.csv")
        image_dirs = {}
        for f in tree.files:
            if f.lower().endswith(".png") and "/" in f:
                d = f.rsplit("/", 1)[0]
                sp = FERPLUS_FOLDERS.get(d.rsplit("/", 1)[-1].lower())
                if sp:
                    image_dirs.setdefault(sp, d)
        if len(label_csvs) == 3 or (label_csvs and not new):
            entries, layout = _ferplus_from_label_csvs(b, tree, label_csvs), "FER2013{Train,Valid,Test}/label.csv"
        elif new and image_dirs:
            entries, layout = _ferplus_from_new(b, tree, new[0], image_dirs), "fer2013new.csv + image folders"
        elif new and tree.find("fer2013.csv"):
            return _ferplus_from_fer2013_csv(b, tree, new[0], tree.find("fer2013.csv")[0])
        else:
            raise DataError(f"{tree.label}: no FER+ labels found (FER2013Train/label.csv ... or fer2013new.csv "
                            "with FER2013{Train,Valid,Test}/ images or fer2013.csv)")
        if not entries:
            raise DataError(f"{tree.label}: FER+ label files list no images")
        votes = np.array([e[3] for e in entries], dtype=np.float64)
        label, keep, soft = ferplus_majority(votes)
        _report_dropped(b, label, [e[1] for e in entries])
        for (member, split, name, _), lab, k, sl in zip(entries, label, keep, soft):
            if not k:
                continue
            if member not in tree:
                b.add_corrupt(tree.where(member), "missing file (listed in the labels)")
                continue
            try:
                data = tree.read(member)
            except Exception as e:  # noqa: BLE001
                b.add_corrupt(tree.where(member), f"{type(e).__name__}: {e}")
                continue
            b.add(data, file=tree.where(member), id=name.rsplit(".", 1)[0], split=split, label=int(lab),
                  label_name=CLASSES_FERPLUS[int(lab)], source=member, extra_values={"soft_labels": sl})
        return b.finish(CLASSES_FERPLUS, layout=layout, expected_splits=sorted({e[1] for e in entries}))


def _votes(row: list[str], start: int, where: str, b: Builder) -> list[float] | None:
    try:
        v = [float(x) for x in row[start:start + 10]]
        if len(v) != 10 or min(v) < 0:
            raise ValueError
        return v
    except ValueError:
        b.add_corrupt(where, f"expected 10 vote counts, got {row[start:]!r}"[:200])
        return None


def _ferplus_from_label_csvs(b: Builder, tree: SourceTree, label_csvs: dict[str, str]) -> list[tuple]:
    entries = []
    for split in ("train", "val", "test"):
        if split not in label_csvs:
            continue
        f = label_csvs[split]
        folder = f.rsplit("/", 1)[0]
        with tree.open_text(f) as fh:
            for ln, row in enumerate(csv.reader(fh), 1):
                if not row or not row[0].strip():
                    continue
                v = _votes(row, 2, f"{tree.where(f)} line {ln}", b)
                if v is None:
                    continue
                name = row[0].strip()
                entries.append((f"{folder}/{name}", split, name, v))
    return entries


def _ferplus_from_new(b: Builder, tree: SourceTree, new: str, image_dirs: dict[str, str]) -> list[tuple]:
    entries = []
    for i, header, row in _rows(tree, new):
        if not row or len(row) < 12:
            b.add_corrupt(f"{tree.where(new)} data row {i}", "too few fields")
            continue
        name = row[1].strip()
        split = _usage_split(row[0])
        if not name:
            continue  # FER+ marks non-faces with an empty image name
        if split is None:
            b.add_corrupt(f"{tree.where(new)} data row {i}", f"unknown Usage {row[0]!r}")
            continue
        v = _votes(row, 2, f"{tree.where(new)} data row {i}", b)
        if v is None:
            continue
        folder = image_dirs.get(split) or _FERPLUS_USAGE_FOLDER[row[0].strip().lower()]
        entries.append((f"{folder}/{name}", split, name, v))
    return entries


def _report_dropped(b: Builder, label: np.ndarray, splits: list[str]) -> None:
    dropped: dict[str, dict[str, int]] = {}
    for s in ("train", "val", "test"):
        m = np.array([x == s for x in splits], dtype=bool)
        if not m.any():
            continue
        dropped[s] = {
            "listed": int(m.sum()),
            "no_majority": int(((label == -1) & m).sum()),
            "unknown": int(((label == 8) & m).sum()),
            "not_a_face": int(((label == 9) & m).sum()),
        }
    b.report["ferplus_protocol"] = "majority (votes of 1 removed; top emotion > half of remaining votes)"
    b.report["dropped_by_protocol"] = dropped


def _ferplus_from_fer2013_csv(b: Builder, tree: SourceTree, new: str, fer_csv: str) -> Prepared:
    """fer2013new.csv row i labels fer2013.csv row i (as the FER+ generator does)."""
    labels: list[tuple[int, str, str, list[float]]] = []
    for i, header, row in _rows(tree, new):
        if len(row) < 12 or not row[1].strip():
            continue
        v = _votes(row, 2, f"{tree.where(new)} data row {i}", b)
        split = _usage_split(row[0])
        if v is not None and split is not None:
            labels.append((i, split, row[1].strip(), v))
    votes = np.array([e[3] for e in labels], dtype=np.float64).reshape(-1, 10)
    label, keep, soft = ferplus_majority(votes)
    _report_dropped(b, label, [e[1] for e in labels])
    want = {e[0]: (e, int(lab), sl) for e, lab, k, sl in zip(labels, label, keep, soft) if k}
    fname = fer_csv.rsplit("/", 1)[-1]
    for i, header, row in _rows(tree, fer_csv):
        if i not in want:
            continue
        (_, split, name, _), lab, sl = want.pop(i)
        ip = header.index("pixels") if "pixels" in header else -1
        try:
            arr = parse_pixels(row[ip], MIN_CSV_SIDE)
        except (ValueError, IndexError) as e:
            b.add_corrupt(f"{tree.where(fer_csv)} data row {i}", str(e))
            continue
        b.add(arr, file=f"{tree.where(fer_csv)} data row {i}", id=name.rsplit(".", 1)[0], split=split, label=lab,
              label_name=CLASSES_FERPLUS[lab], source=f"{fname}:{i}", extra_values={"soft_labels": sl})
    for (_, _, name, _), _, _ in want.values():
        b.add_corrupt(f"{tree.where(fer_csv)}", f"no row for {name}")
    return b.finish(CLASSES_FERPLUS, layout="fer2013new.csv + fer2013.csv pixels",
                    expected_splits=sorted({e[1] for e in labels}))
