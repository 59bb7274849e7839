"""DVC stage `evaluate`: test-time enhancement of every classifier -> metrics/tte.json."""
import sys

from _run import run

enhanced = sys.argv[1]
run("evaluate", "--models", "models/fer", "--prepared", "data/prepared", "--degraded", "data/degraded",
    "--enhanced", enhanced, "--out", "metrics/tte.json")
