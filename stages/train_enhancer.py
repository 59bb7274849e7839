"""DVC stage `train_enhancer@<name>`: train a learned enhancer -> models/enhancers/<name>/."""
import sys

from _run import run

name = sys.argv[1]
run("train-enhancer", name, "--prepared", "data/prepared", "--degraded", "data/degraded",
    "--out", f"models/enhancers/{name}")
