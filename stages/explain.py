"""DVC stage `explain`: Grad-CAM overlays, first-layer filters and feature maps; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import explain

run(explain)
