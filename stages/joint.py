"""DVC stages `joint@<enhancer>-<backbone>`: [ll-fer] joint training and the scheme comparison; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import joint

run(joint)
