"""Readers for face datasets laid out as class folders or named by code: folder, jaffe, kdef, rafdb.

Sets without their own splits (JAFFE, KDEF, CK+ folders) get ``val`` / ``test``
carved from ``train`` by ``val_fraction`` / ``test_fraction`` (default 0.1 each;
0 keeps everything in ``train``, e.g. for k-fold CV): subject-disjoint whenever
the file names carry subject ids, otherwise stratified by class.  A split that
exists in the source is never changed; a missing ``val`` (RAF-DB) is carved
from ``train`` the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError, DataError
from ..registry import DATASETS
from .common import (
    CANONICAL_CLASSES,
    Builder,
    canonical_split,
    is_image_name,
    order_classes,
    try_canonical_class,
    unique_ids,
)
from .sources import SourceTree, open_tree
from .store import CLASSES_FER2013, Prepared

# --------------------------------------------------------------------------- class-folder trees


@dataclass
class ClassTree:
    """Images found under ``[<prefix>/][<split>/]<class>/.../<image>``."""

    items: list[tuple[str, str | None, str]]  # (member, split or None, class name)
    folders: dict[str | None, dict[str, str]]  # split -> {class: folder path}
    split_folders: dict[str, str] = field(default_factory=dict)  # split -> folder path
    prefix: str = ""
    ignored: list[str] = field(default_factory=list)

    @property
    def has_splits(self) -> bool:
        return bool(self.split_folders)


def find_class_tree(tree: SourceTree, resolve: Callable[[str], str | None], max_depth: int = 6) -> ClassTree:
    """Locate the class folders (and optional split folders above them) in ``tree``.

    Descends through single wrapper folders (``CK+48/``, ``fer2013/``) until it
    finds folders that are all split names or all class names (``resolve``
    returns None for a non-class name).
    """
    imgs = [f for f in tree.files if is_image_name(f)]
    if not imgs:
        raise DataError(f"{tree.label}: no image files found")
    parts = [f.split("/") for f in imgs]
    ignored: list[str] = []
    d = 0
    while True:
        deeper = [p for p in parts if len(p) > d + 1]
        ignored += ["/".join(p) for p in parts if len(p) <= d + 1]
        parts = deeper
        names = sorted({p[d] for p in parts})
        prefix = "/".join(parts[0][:d]) if parts else ""
        if not names:
            raise DataError(f"{tree.label}: no class folders found (images must sit in <class>/ folders)")
        if all(canonical_split(n) for n in names) and not all(resolve(n) for n in names):
            _check_empty(tree, prefix, names, lambda n: canonical_split(n) is not None, "split")
            for n in names:
                sub = "/".join(filter(None, [prefix, n]))
                _check_empty(tree, sub, {p[d + 1] for p in parts if p[d] == n and len(p) > d + 2},
                             lambda c: resolve(c) is not None, "class")
            return _split_layout(tree, parts, d, resolve, prefix, ignored)
        if all(resolve(n) for n in names):
            _check_empty(tree, prefix, names, lambda n: resolve(n) is not None, "class")
            items = [("/".join(p), None, resolve(p[d])) for p in parts]
            folders: dict[str | None, dict[str, str]] = {None: {}}
            for n in names:
                folders[None][resolve(n)] = "/".join(filter(None, [prefix, n]))  # type: ignore[index]
            return ClassTree(items, folders, prefix=prefix, ignored=ignored)
        if len(names) == 1 and d < max_depth:
            d += 1
            continue
        bad = [n for n in names if not resolve(n)]
        where = f"{tree.label}/{prefix}" if prefix else tree.label
        raise DataError(
            f"{where}: folder(s) {', '.join(repr(b) for b in bad[:5])} are neither class nor split "
            f"folders (known classes: {', '.join(CANONICAL_CLASSES)}; set 'classes' or 'class_map')"
        )


def _check_empty(tree: SourceTree, prefix: str, with_images: set[str] | list[str], wanted: Callable[[str], bool],
                 kind: str) -> None:
    """A split or class folder without any image is an error (an empty split / missing class)."""
    base = prefix + "/" if prefix else ""
    for d in sorted(tree.dirs):
        if d.startswith(base) and "/" not in d[len(base):]:
            name = d[len(base):]
            if name not in with_images and wanted(name):
                raise DataError(f"{tree.where(d)}: {kind} folder has no images"
                                + (" (empty split)" if kind == "split" else ""))


def _split_layout(tree: SourceTree, parts: list[list[str]], d: int, resolve: Callable[[str], str | None],
                  prefix: str, ignored: list[str]) -> ClassTree:
    items = []
    folders: dict[str | None, dict[str, str]] = {}
    split_folders: dict[str, str] = {}
    for p in parts:
        split = canonical_split(p[d])
        assert split is not None
        split_dir = "/".join(p[: d + 1])
        split_folders.setdefault(split, split_dir)
        folders.setdefault(split, {})
        if len(p) <= d + 2:
            ignored.append("/".join(p))
            continue
        cls = resolve(p[d + 1])
        if cls is None:
            raise DataError(
                f"{tree.where(split_dir + '/' + p[d + 1])}: not a known class folder "
                f"(known: {', '.join(CANONICAL_CLASSES)}; set 'classes' or 'class_map')"
            )
        folders[split].setdefault(cls, "/".join(p[: d + 2]))
        items.append(("/".join(p), split, cls))
    for split, sdir in split_folders.items():
        if not folders[split]:
            raise DataError(f"{tree.where(sdir)}: split folder has no class folders with images (empty split)")
    return ClassTree(items, folders, split_folders=split_folders, prefix=prefix, ignored=ignored)


def check_class_folders(tree: SourceTree, ct: ClassTree, required: Sequence[str]) -> None:
    """Every split must have a folder (with images) for every required class."""
    for split, fold in ct.folders.items():
        missing = [c for c in required if c not in fold]
        if missing:
            base = ct.split_folders.get(split, ct.prefix) if split else ct.prefix
            where = tree.where(base) if base else tree.label
            raise DataError(f"{where}: missing class folder(s) for {', '.join(missing)}"
                            + (f" in split {split!r}" if split else ""))


# --------------------------------------------------------------------------- subject ids from file names

_KDEF_RE = re.compile(r"^([AB])([FM]\d{2})([A-Z]{2})(S|HL|HR|FL|FR)$", re.IGNORECASE)
_JAFFE_RE = re.compile(r"^([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)$", re.IGNORECASE)
_CKPLUS_RE = re.compile(r"^(S\d{3})_\d{3}_\d+$", re.IGNORECASE)

#: name -> (pattern, group holding the subject id)
SUBJECT_PATTERNS = {"kdef": (_KDEF_RE, 2), "jaffe": (_JAFFE_RE, 1), "ck+": (_CKPLUS_RE, 1)}


def subjects_from_names(members: Sequence[str]) -> tuple[list[str], str | None]:
    """Subject ids from the known naming scheme (KDEF, JAFFE, CK+) that most file names follow.

    Names that do not follow it get ``""``; :func:`~llfer.data.common.carve_splits`
    then falls back to a stratified split and says so (log and report.json).
    """
    stems = [m.rsplit("/", 1)[-1].rsplit(".", 1)[0] for m in members]
    best: tuple[int, list[str], str | None] = (0, [""] * len(members), None)
    for scheme, (rx, g) in SUBJECT_PATTERNS.items():
        ms = [rx.match(s) for s in stems]
        hits = sum(m is not None for m in ms)
        if hits > best[0]:
            best = (hits, [m.group(g).upper() if m else "" for m in ms], scheme)
    hits, subjects, scheme = best
    if scheme is not None and hits < len(members):
        scheme = f"{scheme} ({hits} of {len(members)} names)"
    return subjects, scheme


# --------------------------------------------------------------------------- helpers


def _options(**kw: Any) -> dict[str, Any]:
    return kw


def _add_files(b: Builder, tree: SourceTree, members: Sequence[str], splits: Sequence[str],
               class_names: Sequence[str], classes: Sequence[str], subjects: Sequence[str],
               ids: Sequence[str] | None = None) -> None:
    ids = list(ids) if ids is not None else unique_ids(members)
    cidx = {c: i for i, c in enumerate(classes)}
    for m, i, s, c, subj in zip(members, ids, splits, class_names, subjects):
        try:
            data = tree.read(m)
        except Exception as e:  # noqa: BLE001
            b.add_corrupt(tree.where(m), f"{type(e).__name__}: {e}")
            continue
        b.add(data, file=tree.where(m), id=i, split=s, label=cidx[c], label_name=c, subject=subj, source=m)


def _resolver(classes: Sequence[str] | None, class_map: Mapping[str, str] | None) -> tuple[Callable[[str], str | None], list[str] | None]:
    cmap = {str(k).strip().lower(): str(v) for k, v in (class_map or {}).items()}
    wanted = None
    if classes is not None:
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes) or not classes:
            raise ConfigError(f"classes must be a list of class names, got {classes!r}")
        wanted = [try_canonical_class(c) or c.strip().lower() for c in classes]
        if len(set(wanted)) != len(wanted):
            raise ConfigError(f"classes has duplicates after mapping to canonical names: {wanted}")

    def resolve(name: str) -> str | None:
        n = cmap.get(name.strip().lower(), name)
        c = try_canonical_class(n)
        if wanted is not None:
            if c in wanted:
                return c
            low = n.strip().lower()
            return low if low in wanted else None
        return c

    return resolve, wanted


# --------------------------------------------------------------------------- folder


@DATASETS.register("folder")
def read_folder(
    source: str | Path,
    *,
    grayscale: bool = True,
    size: int | list[int] | None = None,
    max_corrupt: float = 0.001,
    classes: list[str] | None = None,
    class_map: dict[str, str] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Prepared:
    """Any <root>/[<split>/]<class>/<image> tree (CK+48, KDEF by class, RAF-DB reorganised).

    Class folder names map onto the canonical vocabulary (``anger`` -> ``angry``);
    ``class_map`` renames folders first (e.g. RAF-DB's ``{"1": "surprise", ...}``);
    ``classes`` fixes the class order and allows names outside the vocabulary.
    Split folders (train/val/test and synonyms) are kept; absent ones are carved
    from train (subject-disjoint when names carry KDEF / JAFFE / CK+ subject ids).
    """
    resolve, wanted = _resolver(classes, class_map)
    opts = _options(grayscale=grayscale, size=size, max_corrupt=max_corrupt, classes=classes,
                    class_map=class_map, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    b = Builder(reader="folder", source=source, grayscale=grayscale, size=size, max_corrupt=max_corrupt, options=opts)
    with open_tree(source) as tree:
        ct = find_class_tree(tree, resolve)
        found = sorted({c for f in ct.folders.values() for c in f})
        cls = list(wanted) if wanted is not None else order_classes(found)
        if ct.has_splits or wanted is not None:
            check_class_folders(tree, ct, cls)
        members = [m for m, _, _ in ct.items]
        subjects, scheme = subjects_from_names(members)
        splits = [s or "train" for _, s, _ in ct.items]
        _add_files(b, tree, members, splits, [c for _, _, c in ct.items], cls, subjects)
        b.report["subject_ids"] = scheme or "none"
        b.report["ignored_files"] = len(ct.ignored)
        layout = "split/class folders" if ct.has_splits else "class folders"
        return b.finish(cls, layout=layout, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                        expected_splits=list(ct.split_folders))


# --------------------------------------------------------------------------- jaffe

_JAFFE_CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sad", "SU": "surprise"}


@DATASETS.register("jaffe")
def read_jaffe(
    source: str | Path,
    *,
    grayscale: bool = True,
    size: int | list[int] | None = None,
    max_corrupt: float = 0.001,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Prepared:
    """JAFFE: 213 .tiff files named like KA.AN1.39.tiff (subject KA, class AN); splits carved by subject.

    Native size 256x256 grayscale.  ``val_fraction`` / ``test_fraction`` pick
    whole subjects (10 in JAFFE); set both to 0 to keep all in train for k-fold CV.
    """
    opts = _options(grayscale=grayscale, size=size, max_corrupt=max_corrupt, val_fraction=val_fraction,
                    test_fraction=test_fraction, seed=seed)
    b = Builder(reader="jaffe", source=source, grayscale=grayscale, size=size, max_corrupt=max_corrupt, options=opts)
    with open_tree(source) as tree:
        members, subjects, names = [], [], []
        for m in tree.files:
            fn = m.rsplit("/", 1)[-1]
            if not fn.lower().endswith((".tiff", ".tif")):
                continue
            mt = _JAFFE_RE.match(fn.rsplit(".", 1)[0])
            if not mt or mt.group(2).upper() not in _JAFFE_CODES:
                continue
            members.append(m)
            subjects.append(mt.group(1).upper())
            names.append(_JAFFE_CODES[mt.group(2).upper()])
        if not members:
            raise DataError(f"{tree.label}: no JAFFE images (named like KA.AN1.39.tiff) found")
        missing = [c for c in CLASSES_FER2013 if c not in names]
        if missing:
            raise DataError(f"{tree.label}: no JAFFE images of class {', '.join(missing)}")
        _add_files(b, tree, members, ["train"] * len(members), names, CLASSES_FER2013, subjects)
        b.report["subject_ids"] = "jaffe"
        b.report["expected_images"] = 213
        return b.finish(CLASSES_FER2013, layout="jaffe file names", val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed)


# --------------------------------------------------------------------------- kdef

_KDEF_CODES = {"AF": "fear", "AN": "angry", "DI": "disgust", "HA": "happy", "NE": "neutral", "SA": "sad", "SU": "surprise"}
_KDEF_POSES = ("S", "HL", "HR", "FL", "FR")


@DATASETS.register("kdef")
def read_kdef(
    source: str | Path,
    *,
    grayscale: bool = True,
    size: int | list[int] | None = None,
    max_corrupt: float = 0.001,
    poses: list[str] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Prepared:
    """KDEF: files named like AF01ANS.JPG (session A, female 01, class AN, pose S); splits carved by subject.

    The subject id is gender + number (``F01``) so both photo sessions (A, B) of
    one person stay in one split.  ``poses`` keeps only some of S (straight),
    HL/HR (half left/right), FL/FR (full left/right); None keeps all.
    """
    if poses is not None:
        if isinstance(poses, str) or not isinstance(poses, (list, tuple)):
            raise ConfigError(f"poses must be a list like ['S'], got {poses!r}")
        bad = [p for p in poses if str(p).upper() not in _KDEF_POSES]
        if bad:
            raise ConfigError(f"poses: unknown KDEF pose(s) {bad}; allowed: {', '.join(_KDEF_POSES)}")
    keep = {str(p).upper() for p in poses} if poses is not None else set(_KDEF_POSES)
    opts = _options(grayscale=grayscale, size=size, max_corrupt=max_corrupt, poses=poses,
                    val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    b = Builder(reader="kdef", source=source, grayscale=grayscale, size=size, max_corrupt=max_corrupt, options=opts)
    with open_tree(source) as tree:
        members, subjects, names = [], [], []
        for m in tree.files:
            fn = m.rsplit("/", 1)[-1]
            if not fn.lower().endswith((".jpg", ".jpeg")):
                continue
            mt = _KDEF_RE.match(fn.rsplit(".", 1)[0])
            if not mt or mt.group(3).upper() not in _KDEF_CODES or mt.group(4).upper() not in keep:
                continue
            members.append(m)
            subjects.append(mt.group(2).upper())
            names.append(_KDEF_CODES[mt.group(3).upper()])
        if not members:
            raise DataError(f"{tree.label}: no KDEF images (named like AF01ANS.JPG) found")
        missing = [c for c in CLASSES_FER2013 if c not in names]
        if missing:
            raise DataError(f"{tree.label}: no KDEF images of class {', '.join(missing)}")
        _add_files(b, tree, members, ["train"] * len(members), names, CLASSES_FER2013, subjects)
        b.report["subject_ids"] = "kdef (gender+number, sessions A/B merged)"
        return b.finish(CLASSES_FER2013, layout="kdef file names", val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed)


# --------------------------------------------------------------------------- rafdb

#: RAF-DB basic-emotion label codes (list_patition_label.txt, 1-based).
RAFDB_CODES = {"1": "surprise", "2": "fear", "3": "disgust", "4": "happy", "5": "sad", "6": "angry", "7": "neutral"}
_RAF_LINE = re.compile(r"^\s*(\S+)\s+(\d+)\s*$")


@DATASETS.register("rafdb")
def read_rafdb(
    source: str | Path,
    *,
    grayscale: bool = True,
    size: int | list[int] | None = None,
    max_corrupt: float = 0.001,
    aligned: bool = True,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Prepared:
    """RAF-DB basic: list_patition_label.txt + Image/aligned/*_aligned.jpg (or train|test/1..7/ folders).

    Splits come from the names (train_*, test_*); ``val`` is carved from train
    by ``val_fraction`` (stratified; RAF-DB has no subject ids).  ``aligned:
    false`` reads ``Image/original`` instead.
    """
    opts = _options(grayscale=grayscale, size=size, max_corrupt=max_corrupt, aligned=aligned,
                    val_fraction=val_fraction, seed=seed)
    b = Builder(reader="rafdb", source=source, grayscale=grayscale, size=size, max_corrupt=max_corrupt, options=opts)
    with open_tree(source) as tree:
        lists = tree.find("list_patition_label.txt") or tree.find("list_partition_label.txt")
        if not lists:
            # the reorganised layout: [train|test]/<1..7>/<image>
            resolve, _ = _resolver(None, RAFDB_CODES)
            ct = find_class_tree(tree, resolve)
            check_class_folders(tree, ct, CLASSES_FER2013)
            members = [m for m, _, _ in ct.items]
            _add_files(b, tree, members, [s or "train" for _, s, _ in ct.items], [c for _, _, c in ct.items],
                       CLASSES_FER2013, [""] * len(members))
            return b.finish(CLASSES_FER2013, layout="rafdb class folders (1..7)", val_fraction=val_fraction,
                            seed=seed, expected_splits=list(ct.split_folders))
        list_file = lists[0]
        by_name: dict[str, str] = {}
        for m in tree.files:
            if is_image_name(m):
                low = m.lower()
                if aligned == ("/aligned/" in f"/{low}" or low.rsplit(".", 1)[0].endswith("_aligned")):
                    by_name.setdefault(m.rsplit("/", 1)[-1].lower(), m)
        entries = []
        with tree.open_text(list_file) as f:
            for ln, line in enumerate(f, 1):
                if not line.strip():
                    continue
                mt = _RAF_LINE.match(line)
                if not mt or mt.group(2) not in RAFDB_CODES:
                    b.add_corrupt(f"{tree.where(list_file)} line {ln}", f"malformed line {line.strip()[:60]!r}")
                    continue
                entries.append(mt.groups())
        found = 0
        members, splits, names, ids = [], [], [], []
        for name, code in entries:
            stem = name.rsplit(".", 1)[0]
            want = f"{stem}_aligned.jpg" if aligned else name
            m = by_name.get(want.lower())
            split = "test" if stem.lower().startswith("test") else "train"
            if m is None:
                b.add_corrupt(f"{tree.label}:{want}", f"missing file (listed in {list_file})")
                continue
            found += 1
            ids.append(stem)
            members.append(m)
            splits.append(split)
            names.append(RAFDB_CODES[code])
        if entries and not found:
            raise DataError(
                f"{tree.label}: none of the images listed in {list_file} found (looked for "
                + ("*_aligned.jpg; set aligned: false for the original images)" if aligned else "the original names)")
            )
        if len(set(ids)) != len(ids):
            raise DataError(f"{tree.where(list_file)}: an image is listed twice")
        _add_files(b, tree, members, splits, names, CLASSES_FER2013, [""] * len(members), ids=ids)
        return b.finish(CLASSES_FER2013, layout="rafdb list_patition_label.txt", val_fraction=val_fraction,
                        seed=seed, expected_splits=sorted(set(splits)))
