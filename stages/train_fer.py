"""DVC stages `train_fer@<backbone>-<input>` and `train_fer_enhanced@...` (with --enhanced DIR); paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import train_fer

run(train_fer)
