"""Low-light image sets for enhancers: paired (LOL) and unpaired real low-light photos (DICM, LIME, NPE, MEF).

These are not FER sets: they have one class ``"none"`` (label 0).  For ``lol``
the stored ``images`` are the normal-light references and ``extras["low"]`` the
matching low-light inputs, row by row.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from ..errors import DataError
from ..registry import DATASETS
from .common import Builder, canonical_split, is_image_name, unique_ids
from .sources import open_tree
from .store import Prepared

NONE_CLASSES = ["none"]
_LOW = {"low", "input", "dark"}
_HIGH = {"high", "normal", "gt", "ref", "reference", "target"}
_LOL_SPLITS = {"our485": "train", "eval15": "test"}
_PAIR_PREFIX = re.compile(r"^(low|normal|high|gt|input)[_-]?", re.IGNORECASE)


def _split_of(parent: str, default: str) -> str:
    for part in reversed([p for p in parent.split("/") if p]):
        s = _LOL_SPLITS.get(part.lower()) or canonical_split(part)
        if s:
            return s
    return default


@DATASETS.register("lol")
def read_lol(
    source: str | Path,
    *,
    grayscale: bool = False,
    size: int | list[int] | None = None,
    max_corrupt: float = 0.001,
) -> Prepared:
    """LOL-style paired low/normal-light folders (our485/{low,high}, eval15/{low,high}, train|test/{low,high}).

    ``images`` = normal-light references, ``extras["low"]`` = low-light inputs.
    Split from the folder above low/high: our485 / train -> train, eval15 / eval
    / test -> test, val -> val (a bare low/high pair: from the source's name,
    else train).  Files pair by name (``low00001`` matches ``normal00001``).
    RGB by default; ``size`` (int or [height, width]) resizes, else the most
    common size is kept and others are resized.
    """
    opts = {"grayscale": grayscale, "size": size, "max_corrupt": max_corrupt}
    b = Builder(reader="lol", source=source, grayscale=grayscale, size=size, max_corrupt=max_corrupt, options=opts)
    with open_tree(source) as tree:
        groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"low": [], "high": []})
        for f in tree.files:
            if not is_image_name(f) or "/" not in f:
                continue
            d, _ = f.rsplit("/", 1)
            parent, _, leaf = d.rpartition("/")
            kind = "low" if leaf.lower() in _LOW else "high" if leaf.lower() in _HIGH else None
            if kind:
                groups[parent][kind].append(f)
        pairs: list[tuple[str, str, str]] = []  # (high, low, split)
        unpaired: list[str] = []
        default = _split_of(Path(str(source)).stem, "train")
        for parent in sorted(groups):
            g = groups[parent]
            if not g["low"] or not g["high"]:
                unpaired += g["low"] + g["high"]
                continue
            split = _split_of(parent, default)
            low = _by_key(g["low"])
            high = _by_key(g["high"])
            for k in sorted(high):
                if k in low:
                    pairs.append((high[k], low[k], split))
                else:
                    unpaired.append(high[k])
            unpaired += [low[k] for k in sorted(low) if k not in high]
        if not pairs:
            raise DataError(f"{tree.label}: no paired low/high (or low/normal) image folders found")
        ids = unique_ids([h for h, _, _ in pairs])
        for (h, lo, split), i in zip(pairs, ids):
            try:
                hb, lb = tree.read(h), tree.read(lo)
            except Exception as e:  # noqa: BLE001
                b.add_corrupt(tree.where(h), f"{type(e).__name__}: {e}")
                continue
            b.add(hb, file=tree.where(h), id=i, split=split, label=0, label_name="none", source=h,
                  extra_images={"low": lb})
        b.report["unpaired_files"] = unpaired[:50]
        b.report["unpaired_count"] = len(unpaired)
        return b.finish(NONE_CLASSES, layout="paired low/high folders",
                        expected_splits=sorted({s for _, _, s in pairs}), min_classes=1)


def _by_key(files: list[str]) -> dict[str, str]:
    """Pairing keys: the stem, or the stem without a low/normal/high prefix if stems differ."""
    stems = {f.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower(): f for f in files}
    return {(_PAIR_PREFIX.sub("", s) or s): f for s, f in stems.items()}


@DATASETS.register("unpaired")
def read_unpaired(
    source: str | Path,
    *,
    grayscale: bool = False,
    size: int | list[int] | None = None,
    max_corrupt: float = 0.001,
) -> Prepared:
    """Real low-light photos without references (DICM, LIME, NPE, MEF) for no-reference scores; all split test.

    Every image under the source (any depth) is one row.  The photos differ in
    size: ``size`` (int or [height, width]) sets the stored size, else the most
    common size is used and the others are resized (counted in the report).
    """
    opts = {"grayscale": grayscale, "size": size, "max_corrupt": max_corrupt}
    b = Builder(reader="unpaired", source=source, grayscale=grayscale, size=size, max_corrupt=max_corrupt, options=opts)
    with open_tree(source) as tree:
        files = [f for f in tree.files if is_image_name(f)]
        if not files:
            raise DataError(f"{tree.label}: no image files found")
        for f, i in zip(files, unique_ids(files)):
            try:
                data = tree.read(f)
            except Exception as e:  # noqa: BLE001
                b.add_corrupt(tree.where(f), f"{type(e).__name__}: {e}")
                continue
            b.add(data, file=tree.where(f), id=i, split="test", label=0, label_name="none", source=f)
        return b.finish(NONE_CLASSES, layout="unpaired image files", expected_splits=["test"], min_classes=1,
                        rotate=True)
