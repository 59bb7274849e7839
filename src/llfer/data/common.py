"""Shared machinery of the dataset readers.

* the canonical class vocabulary and :func:`canonical_class`;
* split names and :func:`carve_splits` (subject-disjoint when subjects are known);
* :func:`decode_image` (bytes -> uint8 array, grayscale or RGB);
* :class:`Builder`: collects rows and images, skips and lists unreadable files,
  resizes to one size, checks the corrupt-file threshold and empty splits,
  finds exact duplicates and writes the ``report`` of a :class:`Prepared`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .store import CLASSES_FER2013, SPLITS, Prepared, summarize

log = logging.getLogger("llfer")

# --------------------------------------------------------------------------- classes

#: Every class name llfer knows, in its canonical order (FER2013's seven, then contempt).
CANONICAL_CLASSES = CLASSES_FER2013 + ["contempt"]

_SYNONYMS = {
    "angry": ["angry", "anger", "an", "ang", "mad"],
    "disgust": ["disgust", "disgusted", "disgusting", "di", "dis"],
    "fear": ["fear", "fearful", "afraid", "scared", "fe", "af"],
    "happy": ["happy", "happiness", "joy", "ha", "hap", "smile"],
    "sad": ["sad", "sadness", "sa"],
    "surprise": ["surprise", "surprised", "su", "sur"],
    "neutral": ["neutral", "neutrality", "ne", "neu", "calm"],
    "contempt": ["contempt", "contemptuous", "co"],
}
_CLASS_LOOKUP = {alias: canon for canon, aliases in _SYNONYMS.items() for alias in aliases}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).strip().lower())


def try_canonical_class(name: str) -> str | None:
    """The canonical name for ``name``, or None if it is not a known emotion name."""
    return _CLASS_LOOKUP.get(_key(name))


def canonical_class(name: str) -> str:
    """Map a class name from any source onto llfer's vocabulary.

    ``"Angry"``, ``"anger"`` and ``"AN"`` -> ``"angry"``; ``"happiness"`` -> ``"happy"``;
    ``"AF"`` (KDEF afraid) -> ``"fear"``; unknown names raise :class:`DataError`.
    """
    canon = try_canonical_class(name)
    if canon is None:
        raise DataError(
            f"unknown class name {name!r}; known: {', '.join(CANONICAL_CLASSES)} (and their usual synonyms)"
        )
    return canon


def order_classes(names: Iterable[str]) -> list[str]:
    """Canonical order for the canonical names present; other names after them, sorted."""
    s = set(names)
    return [c for c in CANONICAL_CLASSES if c in s] + sorted(s - set(CANONICAL_CLASSES))


# --------------------------------------------------------------------------- splits

_SPLIT_LOOKUP = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "publictest": "val",
    "test": "test", "testing": "test", "tst": "test", "privatetest": "test", "eval": "test",
}


def canonical_split(name: str) -> str | None:
    return _SPLIT_LOOKUP.get(_key(name))


def carve_splits(
    splits: Sequence[str],
    labels: Sequence[int],
    subjects: Sequence[str],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    where: str,
) -> tuple[list[str], dict[str, Any]]:
    """Move part of ``train`` to ``val`` / ``test`` where those splits are absent.

    Subject-disjoint (whole subjects move) when every train row has a subject,
    otherwise stratified by class.  Deterministic given ``seed``.  Returns the
    new split list and a note for the report.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (0.0 <= float(f) < 1.0):
            raise ConfigError(f"{name} must be in [0, 1), got {f!r}")
    splits = list(splits)
    present = set(splits)
    todo = [(s, f) for s, f in (("test", test_fraction), ("val", val_fraction)) if s not in present and f > 0]
    if not todo:
        return splits, {}
    train = np.array([i for i, s in enumerate(splits) if s == "train"], dtype=np.int64)
    if len(train) == 0:
        return splits, {}
    rng = np.random.default_rng(seed)
    subj = [subjects[i] for i in train]
    note: dict[str, Any] = {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}
    if any(subj) and not all(subj):
        missing = [i for i, x in zip(train, subj) if not x]
        note["warning"] = (f"{where}: {len(missing)} of {len(train)} train images have no subject id in their "
                           "file name, so val/test were carved stratified by class, NOT subject-disjoint "
                           "(the same person may appear in train and test)")
        log.warning(note["warning"])
    if all(subj):
        note["method"] = "subject-disjoint"
        uniq = sorted(set(subj))
        perm = [uniq[i] for i in rng.permutation(len(uniq))]
        pos = 0
        chosen: dict[str, str] = {}
        for split, f in todo:
            n = max(1, round(f * len(uniq)))
            for s in perm[pos:pos + n]:
                chosen[s] = split
            pos += n
        if pos >= len(uniq):
            raise DataError(f"{where}: {len(uniq)} subjects are too few to carve val/test splits "
                            f"(val_fraction={val_fraction}, test_fraction={test_fraction})")
        for i in train:
            if subjects[i] in chosen:
                splits[i] = chosen[subjects[i]]
        note["subjects"] = {sp: sorted(s for s, v in chosen.items() if v == sp) for sp, _ in todo}
    else:
        note["method"] = "stratified by class"
        by_class: dict[int, list[int]] = defaultdict(list)
        for i in train:
            by_class[int(labels[i])].append(int(i))
        for c in sorted(by_class):
            idx = np.array(by_class[c])[rng.permutation(len(by_class[c]))]
            pos = 0
            for split, f in todo:
                n = int(round(f * len(idx)))
                for i in idx[pos:pos + n]:
                    splits[i] = split
                pos += n
    for split, _ in todo:
        if split not in splits:
            raise DataError(f"{where}: the carved {split} split is empty ({len(train)} train images; "
                            f"raise {split}_fraction or add a {split} folder)")
    if "train" not in splits:
        raise DataError(f"{where}: no train images left after carving val/test")
    return splits, note


# --------------------------------------------------------------------------- images

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".pnm", ".webp"}


def is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in IMAGE_EXTS


def parse_size(size: Any) -> tuple[int, int] | None:
    """``None`` (native), an int (square) or ``[height, width]``."""
    if size is None:
        return None
    if isinstance(size, bool):
        raise ConfigError(f"size must be an int, [height, width] or null, got {size!r}")
    if isinstance(size, int):
        hw = (size, size)
    elif isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in size):
        hw = (int(size[0]), int(size[1]))
    else:
        raise ConfigError(f"size must be an int, [height, width] or null, got {size!r}")
    if min(hw) < 1:
        raise ConfigError(f"size must be positive, got {size!r}")
    return hw


def decode_image(data: bytes, grayscale: bool) -> tuple[np.ndarray, bool]:
    """Decode an encoded image to uint8 HxW (grayscale) or HxWx3; also say whether its mode was converted."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        target = "L" if grayscale else "RGB"
        mode = im.mode
        if mode == target:
            arr = np.asarray(im)
        elif mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            a = np.asarray(im).astype(np.float64) * (255.0 / _full_scale(im, mode))
            arr = np.clip(np.rint(a), 0, 255).astype(np.uint8)
            if not grayscale:
                arr = np.repeat(arr[..., None], 3, axis=2)
        else:
            arr = np.asarray(im.convert(target))
    if arr.dtype != np.uint8:
        arr = arr.astype(np.uint8)
    return arr, mode != target


def _full_scale(im: Any, mode: str) -> float:
    """The white level of a high-bit-depth grayscale image, from its bit depth, never from its content
    (a dark 16-bit photo stays dark).  16-bit modes: 65535; 32-bit integer TIFFs: their BitsPerSample
    (PNG "I" is 16-bit); float images: 1.0."""
    if mode == "F":
        return 1.0
    bits = 16
    if mode == "I":
        tags = getattr(im, "tag_v2", None)
        per_sample = tags.get(258) if tags is not None else None
        if per_sample:
            bits = int(per_sample[0] if isinstance(per_sample, (tuple, list)) else per_sample)
    return float(2 ** bits - 1)


def gray_to_target(arr: np.ndarray, grayscale: bool) -> tuple[np.ndarray, bool]:
    """An HxW uint8 array in the target mode (used for CSV pixel rows)."""
    if grayscale:
        return arr, False
    return np.repeat(arr[..., None], 3, axis=2), True


def resize_array(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize with PIL."""
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((hw[1], hw[0]), Image.Resampling.BILINEAR))


def unique_ids(rels: Sequence[str]) -> list[str]:
    """File stems as ids; stems that collide get their folder path appended (``a/b/x.jpg`` -> ``x-a-b``)."""
    stems = [r.rsplit("/", 1)[-1].rsplit(".", 1)[0] for r in rels]
    count = Counter(stems)
    ids = [s if count[s] == 1 or "/" not in r else f"{s}-{r.rsplit('/', 1)[0].replace('/', '-')}"
           for s, r in zip(stems, rels)]
    if len(set(ids)) != len(ids):
        seen: Counter[str] = Counter()
        out = []
        for i in ids:
            seen[i] += 1
            out.append(i if seen[i] == 1 else f"{i}-{seen[i]}")
        ids = out
    return ids


# --------------------------------------------------------------------------- builder

MAX_LISTED = 50


class Builder:
    """Collects decoded images and index rows; :meth:`finish` makes the :class:`Prepared`.

    Each row has a main image and optionally further images under ``extra_images``
    keys (e.g. LOL's ``low``) decoded the same way, and per-row ``extra_values``
    (e.g. FER+ soft labels).  A row any of whose images cannot be read is skipped
    and listed in ``report["corrupt"]``.
    """

    def __init__(self, *, reader: str, source: Any, grayscale: bool, size: Any, max_corrupt: float,
                 options: Mapping[str, Any] | None = None):
        if not isinstance(grayscale, bool):
            raise ConfigError(f"grayscale must be true or false, got {grayscale!r}")
        try:
            max_corrupt = float(max_corrupt)
        except (TypeError, ValueError):
            raise ConfigError(f"max_corrupt must be a fraction in [0, 1], got {max_corrupt!r}") from None
        if not 0.0 <= max_corrupt <= 1.0:
            raise ConfigError(f"max_corrupt must be a fraction in [0, 1], got {max_corrupt!r}")
        self.reader = reader
        self.source = str(source)
        self.grayscale = grayscale
        self.size = parse_size(size)
        self.max_corrupt = max_corrupt
        self.options = dict(options or {})
        self.images: list[np.ndarray | None] = []
        self.extra_images: dict[str, list[np.ndarray | None]] = defaultdict(list)
        self.extra_values: dict[str, list[Any]] = defaultdict(list)
        self.rows: list[dict[str, Any]] = []
        self.corrupt: list[dict[str, str]] = []
        self.converted = 0
        self.attempted = 0
        self.report: dict[str, Any] = {}

    # -- adding rows
    def add(self, image: bytes | np.ndarray, *, file: str, id: str, split: str, label: int, label_name: str,
            subject: str = "", source: str = "", extra_images: Mapping[str, bytes | np.ndarray] | None = None,
            extra_values: Mapping[str, Any] | None = None) -> bool:
        """Decode and add one row; returns False (and records the file) if it could not be read."""
        self.attempted += 1
        decoded = []
        conv = 0
        what = file
        try:
            for key, item in [("image", image)] + list((extra_images or {}).items()):
                what = file if key == "image" else f"{file} ({key})"
                if isinstance(item, np.ndarray):
                    arr, c = gray_to_target(item, self.grayscale) if item.ndim == 2 else (item, False)
                else:
                    arr, c = decode_image(item, self.grayscale)
                decoded.append((key, arr))
                conv += int(c)
        except Exception as e:  # noqa: BLE001 - any decoder failure means an unreadable file
            self.add_corrupt(what, _describe(e), attempted=False)
            return False
        self.converted += conv
        self.images.append(decoded[0][1])
        for key, arr in decoded[1:]:
            self.extra_images[key].append(arr)
        for key, val in (extra_values or {}).items():
            self.extra_values[key].append(val)
        self.rows.append({"id": str(id), "split": split, "label": int(label), "label_name": label_name,
                          "subject": subject or "", "source": source or file})
        return True

    def add_corrupt(self, file: str, error: str, attempted: bool = True) -> None:
        """Record a file (or CSV row) that could not be used."""
        if attempted:
            self.attempted += 1
        self.corrupt.append({"file": file, "error": error})

    # -- finishing
    def finish(self, classes: Sequence[str], *, layout: str, val_fraction: float = 0.0,
               test_fraction: float = 0.0, seed: int = 0, expected_splits: Iterable[str] = (),
               provenance: Mapping[str, Any] | None = None, min_classes: int = 2,
               rotate: bool = False) -> Prepared:
        """The :class:`Prepared` of the rows added.  ``min_classes``: distinct labels required (FER sets 2;
        low-light sets, one "none" class, 1).  ``rotate``: a photo whose orientation (portrait / landscape)
        differs from the stored size is turned 90 degrees before resizing instead of being stretched."""
        import pandas as pd

        where = self.source
        n_bad = len(self.corrupt)
        if n_bad > self.max_corrupt * max(self.attempted, 1):
            first = self.corrupt[0]
            raise DataError(
                f"{where}: {n_bad} of {self.attempted} files unreadable (more than max_corrupt="
                f"{self.max_corrupt:g}); first: {first['file']}: {first['error']}"
            )
        if not self.rows:
            raise DataError(f"{where}: no readable images found")
        found = sorted({r["label_name"] for r in self.rows})
        if len(found) < min_classes:
            raise DataError(f"{where}: only one class ({found[0]}) found; expression recognition needs at least "
                            "2 classes")

        splits = [r["split"] for r in self.rows]
        for s in expected_splits:
            if s not in splits:
                raise DataError(f"{where}: split {s!r} is empty (no readable images)")
        labels = [r["label"] for r in self.rows]
        subjects = [r["subject"] for r in self.rows]
        splits, carve_note = carve_splits(splits, labels, subjects, val_fraction=val_fraction,
                                          test_fraction=test_fraction, seed=seed, where=where)
        rank = {s: i for i, s in enumerate(SPLITS)}
        order = sorted(range(len(splits)), key=lambda i: rank.get(splits[i], len(rank)))

        hw = self.size or _most_common_hw(self.images)
        resized = 0
        stats: Counter[str] = Counter()
        images, r = _assemble(self.images, order, hw, rotate, stats)
        resized += r
        extras: dict[str, np.ndarray] = {}
        for key, lst in self.extra_images.items():
            extras[key], r = _assemble(lst, order, hw, rotate, stats)
            resized += r
        if stats["stretched"]:
            log.warning("%s: %d image(s) resized to %dx%d with a different aspect ratio (stretched)",
                        where, stats["stretched"], hw[0], hw[1])
        for key, vals in self.extra_values.items():
            extras[key] = np.asarray([vals[i] for i in order])
        self.images = []
        self.extra_images.clear()

        rows = [dict(self.rows[i], split=splits[i]) for i in order]
        index = pd.DataFrame(rows, columns=["id", "split", "label", "label_name", "subject", "source"])
        if index["id"].duplicated().any():
            dup = index["id"][index["id"].duplicated()].iloc[0]
            raise DataError(f"{where}: duplicate image id {dup!r}")

        classes = list(classes)
        report: dict[str, Any] = {
            "reader": self.reader,
            "source": self.source,
            "layout": layout,
            "num_images": int(len(index)),
            "image_size": [int(hw[0]), int(hw[1])],
            "channels": 1 if self.grayscale else 3,
            "classes": classes,
            "counts": summarize(index, classes),
            "files_read": int(self.attempted),
            "corrupt_count": n_bad,
            "max_corrupt": self.max_corrupt,
            "corrupt": self.corrupt,
            "duplicates": find_duplicates(images, index),
            "resized": int(resized),
            "stretched": int(stats["stretched"]),
            "rotated": int(stats["rotated"]),
            "converted": int(self.converted),
        }
        if carve_note:
            report["carved_splits"] = carve_note
            if "warning" in carve_note:
                report.setdefault("warnings", []).append(carve_note["warning"])
                carve_note["without_subject"] = [r["source"] for r in rows if r["split"] == "train" and not r["subject"]][:MAX_LISTED]
        report.update(self.report)
        prov = {"reader": self.reader, "source": self.source, "layout": layout, "options": self.options}
        prov.update(provenance or {})
        return Prepared(images=images, index=index, classes=classes, extras=extras, report=report, provenance=prov)


def _describe(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _most_common_hw(images: Sequence[np.ndarray | None]) -> tuple[int, int]:
    c = Counter(a.shape[:2] for a in images if a is not None)
    (h, w), _ = max(c.items(), key=lambda kv: (kv[1], kv[0]))
    return int(h), int(w)


def _assemble(lst: list[np.ndarray | None], order: Sequence[int], hw: tuple[int, int], rotate: bool = False,
              stats: Counter[str] | None = None) -> tuple[np.ndarray, int]:
    """Stack ``lst`` in ``order`` into one preallocated array, resizing as needed, freeing as it goes.

    ``stats`` counts ``rotated`` images (``rotate``: portrait vs landscape turned by 90 degrees)
    and ``stretched`` ones (aspect ratio changed by more than 2 %)."""
    stats = stats if stats is not None else Counter()
    first = next(a for a in lst if a is not None)
    shape = (len(order), hw[0], hw[1]) + tuple(first.shape[2:])
    out = np.empty(shape, dtype=np.uint8)
    resized = 0
    for pos, i in enumerate(order):
        a = lst[i]
        lst[i] = None
        assert a is not None
        if rotate and a.shape[0] != a.shape[1] and hw[0] != hw[1] and (a.shape[0] > a.shape[1]) != (hw[0] > hw[1]):
            a = np.ascontiguousarray(np.rot90(a))
            stats["rotated"] += 1
        if a.shape[:2] != hw:
            if abs(np.log((a.shape[0] / a.shape[1]) / (hw[0] / hw[1]))) > 0.02:
                stats["stretched"] += 1
            a = resize_array(a, hw)
            resized += 1
        out[pos] = a
    return out, resized


def find_duplicates(images: np.ndarray, index: Any) -> dict[str, Any]:
    """Exact duplicates by content hash of the stored pixels.

    ``within_split``: images that repeat an earlier image of the same split;
    ``across_splits``: duplicate groups whose members lie in more than one split;
    ``groups``: the first groups (lists of ids), in row order.
    """
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i in range(len(images)):
        groups[hashlib.blake2b(images[i].tobytes(), digest_size=16).digest()].append(i)
    multi = [g for g in groups.values() if len(g) > 1]
    multi.sort(key=lambda g: g[0])
    ids = index["id"].tolist()
    spl = index["split"].tolist()
    within = 0
    across = 0
    across_images = 0
    for g in multi:
        c = Counter(spl[i] for i in g)
        within += sum(v - 1 for v in c.values())
        if len(c) > 1:
            across += 1
            across_images += len(g)
    return {
        "within_split": int(within),
        "across_splits": int(across),
        "across_split_images": int(across_images),
        "groups_total": len(multi),
        "images_in_groups": int(sum(len(g) for g in multi)),
        "groups": [[ids[i] for i in g] for g in multi[:MAX_LISTED]],
        "definition": ("exact pixel equality after decoding; within_split = images repeating an earlier "
                       "image of the same split; across_splits = groups spanning more than one split"),
    }


def sqrt_side(n: int) -> int | None:
    s = math.isqrt(n)
    return s if s * s == n and s > 0 else None
