"""FER input specs: a data source plus a chain of preprocessors.

Grammar: ``<source>[+<preprocessor>...]`` where the source is ``clean``, a
degraded variant name (``dark_pil``, ``dark_gamma``, ``lowres_10``, ...),
``enhanced`` (the selected enhancer's output on ``fer.enhanced_variant``) or
``enhanced:<variant>``.  A spec that starts with a preprocessor reads the clean
images (``he`` == ``clean+he``).  Examples: ``clean``, ``dark_pil+he``,
``enhanced+he``, ``gcn_he``, ``sobel3``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .data.store import Dataset, check_same_set, read_dataset
from .errors import ConfigError, DataError
from .preprocess import apply_preprocessors
from .registry import PREPROCESSORS

if TYPE_CHECKING:  # config imports this module
    from .config import Params


def parse_spec(
    spec: str, variants: Sequence[str], enhanced_variants: Sequence[str], where: str = "input"
) -> tuple[str, list[str]]:
    """Split a spec into (source, [preprocessors]); unknown names raise ConfigError."""
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    if not parts:
        raise ConfigError(f"{where}: empty input spec")
    head = parts[0]
    sources = ["clean", *variants, "enhanced", *(f"enhanced:{v}" for v in enhanced_variants)]
    if head in sources:
        src, preps = head, parts[1:]
    elif head in PREPROCESSORS:
        src, preps = "clean", parts
    else:
        raise ConfigError(
            f"{where}: unknown source or preprocessor {head!r} in {spec!r}; sources: {', '.join(sources)}; "
            f"preprocessors: {', '.join(PREPROCESSORS.names())}"
        )
    for p in preps:
        PREPROCESSORS.entry(p, key=where)
    return src, preps


@dataclass
class Roots:
    """Where the stages keep their data."""

    prepared: Path
    degraded: Path
    enhanced: Path | None = None  # data/enhanced/<selected enhancer>
    enhanced_variant: str = "dark_pil"

    def source_dir(self, src: str) -> Path:
        if src == "clean":
            return self.prepared
        if src.startswith("enhanced"):
            if self.enhanced is None:
                raise ConfigError(f"input {src!r} needs the enhanced data directory")
            variant = src.split(":", 1)[1] if ":" in src else self.enhanced_variant
            return self.enhanced / variant
        return self.degraded / src


class InputLoader:
    """Loads (and caches) source datasets and applies preprocessor chains."""

    def __init__(self, roots: Roots, variants: Sequence[str], enhanced_variants: Sequence[str],
                 prep_params: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0):
        self.roots = roots
        self.variants = list(variants)
        self.enhanced_variants = list(enhanced_variants)
        self.prep_params = {k: dict(v or {}) for k, v in (prep_params or {}).items()}
        self.seed = seed
        self._cache: dict[Path, Dataset] = {}

    def dataset(self, src: str) -> Dataset:
        d = self.roots.source_dir(src)
        if d not in self._cache:
            if not d.exists():
                raise DataError(f"input source {src!r}: {d} does not exist (run the stage that makes it first)")
            ds = read_dataset(d)
            if src != "clean":  # a variant of another dataset would train with wrong labels
                check_same_set(self.dataset("clean"), ds, f"{src!r} input")
            self._cache[d] = ds
        return self._cache[d]

    def load(self, spec: str, split: str | Sequence[str], train: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Images (uint8), labels and ids of ``split`` for ``spec``; preprocessors applied."""
        src, preps = parse_spec(spec, self.variants, self.enhanced_variants, f"input {spec!r}")
        ds = self.dataset(src)
        idx = ds.split_indices(split)
        if len(idx) == 0:
            raise DataError(f"{ds.path}: split {split!r} is empty")
        images = np.asarray(ds.images[idx])
        labels = ds.labels[idx]
        if train and len(np.unique(labels)) < 2:
            raise DataError(f"{ds.path}: split {split!r} holds only class {ds.classes[int(labels[0])]!r}; "
                            "training needs at least 2 classes")
        ids = ds.index["id"].iloc[idx].astype(str).tolist()
        if preps:
            images = apply_preprocessors(preps, images, ids=ids, train=train, seed=self.seed, params=self.prep_params)
        return images, labels, ids

    def extra(self, name: str, split: str | Sequence[str], key: str) -> np.ndarray:
        """The prepared dataset's per-image array ``name`` (e.g. FER+ ``soft_labels``) for the rows of ``split``,
        in the order :meth:`load` gives them (every input is the prepared set's rows; ``key`` names the
        setting that asked for it in the error)."""
        ds = self.dataset("clean")
        if name not in ds.extras:
            raise ConfigError(f"{key}: {ds.path} has no {name}.npy (of the FER readers only FER+ stores its "
                              "vote distributions there)")
        return np.asarray(ds.extras[name][ds.split_indices(split)])

    def classes(self) -> list[str]:
        ds = self.dataset("clean")
        if len(ds.classes) < 2:
            raise DataError(f"{ds.path / 'meta.json'}: one class ({', '.join(ds.classes)}); expression "
                            "recognition needs at least 2")
        return ds.classes


def input_roots(prepared: Path, degraded: Path, enhanced: Path | None, p: Params) -> Roots:
    """The stage directories, with ``fer.enhanced_variant`` as what ``enhanced`` means."""
    return Roots(prepared=Path(prepared), degraded=Path(degraded), enhanced=Path(enhanced) if enhanced else None,
                 enhanced_variant=p.fer.enhanced_variant)


def make_loader(p: Params, roots: Roots) -> InputLoader:
    """An input loader for the variants, enhanced variants and preprocessor options of ``p``."""
    return InputLoader(roots, p.variant_names(), p.enhance.variants, p.fer.preprocess, seed=p.seed)


def stratified_subset(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a fixed random subset of at most ``n`` of ``labels``, each class kept in proportion.

    Every class is shuffled (a generator seeded by ``seed``) and the images are taken in the order of their
    rank within their class divided by the class size, so any ``n`` keeps the class shares (to one image)
    and a smaller ``n`` gives a subset of a larger one.
    """
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    key = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        key[rng.permutation(rows)] = (np.arange(len(rows)) + 0.5) / len(rows)
    return np.sort(np.lexsort((np.arange(len(labels)), key))[:n])
