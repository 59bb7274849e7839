"""DVC stage `degrade`: the prepared set -> one directory per degraded variant; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import degrade

run(degrade)
