"""Datasets: the shared on-disk format (:mod:`.store`), the dataset readers and the synthetic set.

Every reader is registered in :data:`llfer.registry.DATASETS` by the module that
defines it (:mod:`.fer`, :mod:`.faces`, :mod:`.lowlight`, :mod:`.synthetic`);
``llfer.registry.import_all()`` imports every module of this package, so a new
reader is one module (or one function) with one ``@DATASETS.register(...)``.

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
synthetic     procedurally drawn faces (no source; the default dataset)
============  ==================================================================

Every reader fills ``Prepared.report`` (written as ``report.json``): counts per
split and class, unreadable files (skipped and listed; the reader fails when
more than ``max_corrupt`` of them), exact duplicates within and across splits,
and how many images were resized or converted.
"""

from .store import CLASSES_FER2013, Dataset, Prepared, read_dataset, write_dataset

__all__ = ["CLASSES_FER2013", "Dataset", "Prepared", "read_dataset", "write_dataset"]
