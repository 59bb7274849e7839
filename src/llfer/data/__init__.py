"""Datasets: the shared on-disk format, readers (registry) and the synthetic set."""

from .store import CLASSES_FER2013, Dataset, Prepared, read_dataset, write_dataset

__all__ = ["CLASSES_FER2013", "Dataset", "Prepared", "read_dataset", "write_dataset"]
