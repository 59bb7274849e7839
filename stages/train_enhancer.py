"""DVC stages `train_enhancer@<name>`: train a learned enhancer; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import train_enhancer

run(train_enhancer)
