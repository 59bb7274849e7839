"""DVC stage `prepare`: dataset (params `dataset`) -> the prepared set; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import prepare

run(prepare)
