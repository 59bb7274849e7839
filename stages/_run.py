"""Shared helper of the stage scripts: run one stage module's ``llfer`` command with the script's
arguments (the paths dvc.yaml hands over) and exit with its status.

Only that stage's module is imported, so a stage's code is its module and what that imports.
When ``LLFER_STAGE_STATS`` names a file, one JSON line per stage (command,
wall seconds, peak RSS in MiB) is appended to it; ``benchmarks/bench_pipeline.py``
uses this to report per-stage time and memory.
"""

import json
import os
import resource
import sys
import time
from types import ModuleType

from llfer.cli import main


def run(stage: ModuleType) -> None:
    argv = [stage.COMMAND, *sys.argv[1:]]
    t0 = time.perf_counter()
    status = main(argv, stages=[stage])
    stats = os.environ.get("LLFER_STAGE_STATS")
    if stats:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with open(stats, "a") as f:
            f.write(json.dumps({"stage": " ".join(argv[:3]), "argv": argv, "seconds": round(time.perf_counter() - t0, 2),
                                "peak_rss_mib": round(peak, 1), "status": status}) + "\n")
    sys.exit(status)
