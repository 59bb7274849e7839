"""DVC stages `enhance@<name>` (learned, with --model DIR) and `enhance_classical@<name>`; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import enhance

run(enhance)
