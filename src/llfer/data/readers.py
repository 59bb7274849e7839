"""Dataset readers: importing this module registers them all in :data:`llfer.registry.DATASETS`.

Each reader is ``reader(source: Path, *, grayscale=..., size=..., max_corrupt=..., ...) -> Prepared``
with keyword options only (the registry checks option names against the
signature, so a typo fails).  ``source`` is a local file or folder (zip and tar
archives are accepted; zip members are read in place).

============  ==================================================================
name          source
============  ==================================================================
fer2013       fer2013.csv / icml_face_data.csv / train.csv+test.csv, or the
              train|test/<class>/{Training,PublicTest,PrivateTest}_*.jpg archive
ferplus       FER2013{Train,Valid,Test}/ + label.csv (or fer2013new.csv), 8 classes
folder        any <root>/[<split>/]<class>/<image> tree
jaffe         KA.AN1.39.tiff files
kdef          AF01ANS.JPG files
rafdb         list_patition_label.txt + Image/aligned/
lol           paired <split>/{low,high}/ folders (enhancer training / testing)
unpaired      real low-light photos without references (DICM, LIME, NPE, MEF)
============  ==================================================================

Every reader fills ``Prepared.report`` (written as ``report.json``): counts per
split and class, unreadable files (skipped and listed; the reader fails when
more than ``max_corrupt`` of them), exact duplicates within and across splits,
and how many images were resized or converted.
"""

from __future__ import annotations

from .common import CANONICAL_CLASSES, canonical_class, carve_splits, decode_image, find_duplicates
from .faces import RAFDB_CODES, read_folder, read_jaffe, read_kdef, read_rafdb
from .fer import CLASSES_FERPLUS, FERPLUS_COLUMNS, ferplus_majority, parse_pixels, read_fer2013, read_ferplus
from .lowlight import read_lol, read_unpaired

__all__ = [
    "CANONICAL_CLASSES",
    "CLASSES_FERPLUS",
    "FERPLUS_COLUMNS",
    "RAFDB_CODES",
    "canonical_class",
    "carve_splits",
    "decode_image",
    "ferplus_majority",
    "find_duplicates",
    "parse_pixels",
    "read_fer2013",
    "read_ferplus",
    "read_folder",
    "read_jaffe",
    "read_kdef",
    "read_lol",
    "read_rafdb",
    "read_unpaired",
]
