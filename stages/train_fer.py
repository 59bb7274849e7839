"""DVC stages `train_fer@<backbone>-<input>` (and the enhanced group, which passes --enhanced DIR)."""
import sys

from _run import run

backbone, inp, *extra = sys.argv[1:]
run("train-fer", backbone, inp, "--prepared", "data/prepared", "--degraded", "data/degraded", *extra,
    "--model-out", f"models/fer/{backbone}-{inp}", "--metrics", f"metrics/fer/{backbone}-{inp}.json",
    "--plots", f"plots/fer/{backbone}-{inp}")
