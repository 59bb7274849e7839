"""DVC stage `cv`: aggregate the k-fold cross-validation folds; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import cv

run(cv)
