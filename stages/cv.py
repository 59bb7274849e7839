"""DVC stage `cv`: stratified k-fold cross-validation; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import cv

run(cv)
