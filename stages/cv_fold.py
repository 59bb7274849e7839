"""DVC stage `cv_fold`: one fold of a run's k-fold cross-validation; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import cv_fold

run(cv_fold)
