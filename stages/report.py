"""DVC stage `report`: summary.json, results table and accuracy chart; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import report

run(report)
