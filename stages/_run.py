"""Shared helper of the stage scripts: run one stage module's ``llfer`` command with the script's
arguments (the paths dvc.yaml hands over) and exit with its status.

Only that stage's module is imported, so a stage's code is its module and what that imports
(``python ci/code_deps.py`` lists it; dvc.yaml's deps must match, tests/test_dvc_deps.py checks).

Run facts stay out of the outputs DVC hashes: under DVC (``$DVC_STAGE`` set) the stage's wall
seconds, peak memory, torch threads, host, versions and whatever the stage recorded through
:mod:`llfer.runfacts` go to ``metrics/timing/<stage>.json`` (no stage declares it; git ignores it).
When ``LLFER_STAGE_STATS`` names a file, one JSON line per stage (command, wall seconds, peak RSS
in MiB) is also appended to it; ``benchmarks/bench_pipeline.py`` uses this to report per-stage time
and memory.
"""

import json
import os
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

# A stage runs this repository's own code -- the files dvc.yaml declares as its deps -- also when the
# environment has llfer installed from another checkout (an editable install of a different clone, a
# queued experiment's temporary copy): otherwise DVC would record this tree's hashes for results made
# by other code.
_SRC = Path(__file__).resolve().parents[1] / "src"
if (_SRC / "llfer" / "__init__.py").is_file():
    sys.path.insert(0, str(_SRC))

import torch  # noqa: E402

from llfer import __version__  # noqa: E402
from llfer.cli import main  # noqa: E402
from llfer.runfacts import FACTS  # noqa: E402

#: where each DVC stage's run facts go (relative to the stage's working directory, the repository root)
TIMING_DIR = Path("metrics") / "timing"


def _write_timing(stage: str, facts: dict) -> None:
    TIMING_DIR.mkdir(parents=True, exist_ok=True)
    path = TIMING_DIR / f"{stage}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(facts, indent=1) + "\n")
    os.replace(tmp, path)


def run(stage: ModuleType) -> None:
    argv = [stage.COMMAND, *sys.argv[1:]]
    t0 = time.perf_counter()
    status = main(argv, stages=[stage])
    seconds = round(time.perf_counter() - t0, 2)
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    dvc_stage = os.environ.get("DVC_STAGE")
    if dvc_stage:
        _write_timing(dvc_stage, {
            "stage": dvc_stage, "status": status, "seconds": seconds, "peak_rss_mib": peak,
            "threads": torch.get_num_threads(), "host": platform.node(), "machine": platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "llfer": __version__,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **FACTS})
    stats = os.environ.get("LLFER_STAGE_STATS")
    if stats:
        with open(stats, "a") as f:
            f.write(json.dumps({"stage": " ".join(argv[:3]), "argv": argv, "seconds": seconds,
                                "peak_rss_mib": peak, "status": status}) + "\n")
    sys.exit(status)
