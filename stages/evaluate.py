"""DVC stage `evaluate`: test-time enhancement of every classifier by every enhancer; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import evaluate

run(evaluate)
