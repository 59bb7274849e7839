"""DVC stages `enhance@<name>` / `enhance_classical@<name>` -> data/enhanced/<name>/<variant>/."""
import sys
from pathlib import Path

from _run import run

name = sys.argv[1]
model = Path("models/enhancers") / name
extra = ["--model", str(model)] if model.exists() else []
run("enhance", name, "--degraded", "data/degraded", *extra, "--out", f"data/enhanced/{name}")
