"""The dataset format shared by every stage (docs/architecture.md, "Data between stages").

A dataset directory holds

* ``images.npy``: uint8, N x H x W (grayscale) or N x H x W x 3 (RGB), memory-mappable;
* ``index.csv``: columns ``id, split, label, label_name, subject, source``;
* ``meta.json``: class names in label order, image size, counts per split and
  class, provenance and hashes.

Degraded and enhanced variants keep the same ids and index, so any two variants
pair row by row.  Extra optional arrays (e.g. ``soft_labels.npy`` for FER+ vote
distributions) may sit beside them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..io import atomic_dir, dumps_json, read_json

#: FER2013 class names in the challenge's label order.
CLASSES_FER2013 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
INDEX_COLUMNS = ["id", "split", "label", "label_name", "subject", "source"]
SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Images, their index and metadata (images may be a read-only memmap)."""

    images: np.ndarray
    index: pd.DataFrame
    meta: dict[str, Any]
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.index):
            raise DataError(
                f"{self.path or 'dataset'}: {len(self.images)} images but {len(self.index)} index rows"
            )

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def labels(self) -> np.ndarray:
        return self.index["label"].to_numpy(dtype=np.int64)

    @property
    def ids(self) -> list[str]:
        return self.index["id"].astype(str).tolist()

    def split_mask(self, split: str) -> np.ndarray:
        return (self.index["split"] == split).to_numpy()

    def split_indices(self, split: str | Sequence[str]) -> np.ndarray:
        """Rows of one split, or of several pooled in index order."""
        splits = [split] if isinstance(split, str) else list(split)
        return np.flatnonzero(self.index["split"].isin(splits).to_numpy())

    def subset(self, idx: np.ndarray) -> "Dataset":
        return Dataset(
            images=np.asarray(self.images[idx]),
            index=self.index.iloc[idx].reset_index(drop=True),
            meta=self.meta,
            extras={k: np.asarray(v[idx]) for k, v in self.extras.items()},
            path=self.path,
        )


def array_sha256(a: np.ndarray) -> str:
    h = hashlib.sha256()
    a = np.ascontiguousarray(a)
    step = 1 << 24
    flat = a.reshape(-1).view(np.uint8)
    for i in range(0, flat.size, step):
        h.update(flat[i : i + step].data)
    return h.hexdigest()


def summarize(index: pd.DataFrame, classes: list[str]) -> dict[str, Any]:
    """Counts per split and per class (in class order)."""
    counts: dict[str, Any] = {}
    for split, g in index.groupby("split", sort=False):
        vc = g["label"].value_counts()
        counts[str(split)] = {
            "total": int(len(g)),
            "per_class": {c: int(vc.get(i, 0)) for i, c in enumerate(classes)},
        }
    return counts


def build_meta(
    images: np.ndarray,
    index: pd.DataFrame,
    classes: list[str],
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "classes": list(classes),
        "num_images": int(len(images)),
        "image_size": [int(images.shape[1]), int(images.shape[2])],
        "channels": 1 if images.ndim == 3 else int(images.shape[3]),
        "counts": summarize(index, classes),
        "images_sha256": array_sha256(images),
        "provenance": dict(provenance or {}),
    }


def _validate(images: np.ndarray, index: pd.DataFrame, classes: list[str], where: str) -> None:
    if images.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8, got {images.dtype}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise DataError(f"{where}: images must be NxHxW or NxHxWx3, got shape {images.shape}")
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"{where}: index lacks columns {missing}")
    if len(images) != len(index):
        raise DataError(f"{where}: {len(images)} images but {len(index)} index rows")
    if index["id"].duplicated().any():
        dup = index["id"][index["id"].duplicated()].iloc[0]
        raise DataError(f"{where}: duplicate image id {dup!r}")
    lab = index["label"].to_numpy()
    if len(lab) and (lab.min() < 0 or lab.max() >= len(classes)):
        raise DataError(f"{where}: labels outside 0..{len(classes) - 1}")


def write_dataset(
    path: str | os.PathLike[str],
    images: np.ndarray,
    index: pd.DataFrame,
    classes: list[str] | None = None,
    meta: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    extras: Mapping[str, np.ndarray] | None = None,
    files: Mapping[str, Any] | None = None,
) -> Path:
    """Write a dataset directory atomically (temp dir, then rename).

    ``meta`` (if given) is merged over the computed metadata; ``files`` maps
    extra JSON file names (e.g. ``report.json``) to objects written beside.
    """
    path = Path(path)
    if classes is None:
        if meta is None or "classes" not in meta:
            raise ValueError("write_dataset needs classes")
        classes = list(meta["classes"])
    index = index.reset_index(drop=True).copy()
    for c in ("subject", "source"):
        if c not in index.columns:
            index[c] = ""
    index = index[INDEX_COLUMNS + [c for c in index.columns if c not in INDEX_COLUMNS]]
    images = np.ascontiguousarray(images)
    _validate(images, index, classes, str(path))
    full_meta = build_meta(images, index, classes, provenance)
    if meta:
        full_meta.update({k: v for k, v in meta.items() if k not in ("counts", "images_sha256", "num_images")})
    with atomic_dir(path) as tmp:
        np.save(tmp / "images.npy", images)
        index.to_csv(tmp / "index.csv", index=False)
        for name, arr in (extras or {}).items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
        (tmp / "meta.json").write_text(dumps_json(full_meta))
        for name, obj in (files or {}).items():
            (tmp / name).write_text(dumps_json(obj))
    return path


def read_dataset(path: str | os.PathLike[str], mmap: bool = True) -> Dataset:
    """Read a dataset directory written by :func:`write_dataset`.

    Every file is checked before it is trusted: a malformed ``images.npy``,
    ``index.csv`` (missing column, non-integer or out-of-range label, duplicate
    id) or ``meta.json`` raises :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"dataset directory {path} does not exist")
    for name in ("images.npy", "index.csv", "meta.json"):
        if not (path / name).exists():
            raise DataError(f"{path}: missing {name} (not a prepared dataset?)")
    images = _load_npy(path / "images.npy", mmap)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise DataError(f"{path / 'images.npy'}: expected uint8 N x H x W (x 3) images, got {images.dtype} {images.shape}")
    meta = read_json(path / "meta.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("classes"), list) or not meta["classes"]:
        raise DataError(f"{path / 'meta.json'}: no 'classes' list (not a prepared dataset?)")
    index = _read_index(path / "index.csv", len(meta["classes"]))
    extras = {}
    for f in sorted(path.glob("*.npy")):
        if f.name != "images.npy":
            extras[f.stem] = _load_npy(f, mmap)
            if len(extras[f.stem]) != len(index):
                raise DataError(f"{f}: {len(extras[f.stem])} rows but {len(index)} index rows")
    return Dataset(images=images, index=index, meta=meta, extras=extras, path=path)


def _load_npy(f: Path, mmap: bool) -> np.ndarray:
    try:
        a = np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{f}: unreadable ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        raise DataError(f"{f}: not an array file")
    return a


def _read_index(f: Path, num_classes: int) -> pd.DataFrame:
    """``index.csv`` with its columns and labels checked (labels integers in 0..num_classes-1, ids unique)."""
    try:
        index = pd.read_csv(f, dtype={"id": str, "split": str, "label_name": str, "subject": str, "source": str},
                            keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{f}: unreadable CSV ({str(e).splitlines()[0][:200]})") from None
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"{f}: no column(s) {', '.join(missing)} (columns: {', '.join(map(str, index.columns))})")
    lab = pd.to_numeric(index["label"], errors="coerce")
    bad = index["label"][lab.isna() | (lab % 1 != 0)]
    if len(bad):
        raise DataError(f"{f}: label {bad.iloc[0]!r} is not an integer")
    lab = lab.astype(np.int64)
    out = index[(lab < 0) | (lab >= num_classes)]
    if len(out):
        raise DataError(f"{f}: label {int(lab[out.index[0]])} of image {out['id'].iloc[0]!r} is outside "
                        f"0..{num_classes - 1} (meta.json lists {num_classes} classes)")
    index["label"] = lab
    if index["id"].duplicated().any():
        raise DataError(f"{f}: duplicate image id {index['id'][index['id'].duplicated()].iloc[0]!r}")
    return index


def check_same_set(ref: Dataset, other: Dataset, what: str) -> None:
    """``other`` (a degraded or enhanced variant) has ``ref``'s classes and, row by row, its ids.

    Only the rows ``other`` holds are compared (an enhanced set may keep only some splits).
    """
    if list(other.classes) != list(ref.classes):
        raise DataError(f"{other.path}: classes {other.classes} differ from {ref.path}'s {ref.classes}: "
                        f"the {what} is not made from this dataset")
    ref_ids = ref.index.set_index("id")
    ids = other.index["id"]
    unknown = ids[~ids.isin(ref_ids.index)]
    if len(unknown):
        raise DataError(f"{other.path}: image id {unknown.iloc[0]!r} is not in {ref.path}: the {what} is not "
                        "made from this dataset")
    lab = ref_ids.loc[ids, "label"].to_numpy()
    if (lab != other.index["label"].to_numpy()).any():
        raise DataError(f"{other.path}: labels differ from {ref.path}'s for the same ids: the {what} is not made "
                        "from this dataset")


@dataclass
class Prepared:
    """What a dataset reader returns; the ``prepare`` stage writes it with :func:`write_dataset`.

    ``index`` has the columns of :data:`INDEX_COLUMNS`; ``extras`` holds optional
    per-image arrays (e.g. ``soft_labels``: N x C vote distributions); ``report``
    is written as ``report.json`` (counts, corrupt files, duplicates, conversions);
    ``provenance`` goes into meta.json (source path/URL, sha256, reader options).
    """

    images: np.ndarray
    index: pd.DataFrame
    classes: list[str]
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def write(self, path: str | os.PathLike[str]) -> Path:
        report = dict(self.report)
        report.setdefault("counts", summarize(self.index, self.classes))
        return write_dataset(
            path,
            self.images,
            self.index,
            classes=self.classes,
            provenance=self.provenance,
            extras=self.extras,
            files={"report.json": report},
        )
