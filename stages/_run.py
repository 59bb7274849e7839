"""Shared helper of the stage scripts: run one ``llfer`` CLI command and exit with its status.

When ``LLFER_STAGE_STATS`` names a file, one JSON line per stage (command,
wall seconds, peak RSS in MiB) is appended to it; ``benchmarks/bench_pipeline.py``
uses this to report per-stage time and memory.
"""

import json
import os
import resource
import sys
import time

from llfer.cli import main


def run(*argv: str) -> None:
    t0 = time.perf_counter()
    status = main(list(argv))
    stats = os.environ.get("LLFER_STAGE_STATS")
    if stats:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with open(stats, "a") as f:
            f.write(json.dumps({"stage": " ".join(argv[:3]), "argv": list(argv), "seconds": round(time.perf_counter() - t0, 2),
                                "peak_rss_mib": round(peak, 1), "status": status}) + "\n")
    sys.exit(status)
