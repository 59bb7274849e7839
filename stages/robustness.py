"""DVC stage `robustness`: accuracy of every classifier x enhancer as light or resolution falls; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import robustness

run(robustness)
