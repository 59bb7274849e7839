"""DVC stage `evaluate`: test-time enhancement of every classifier by every enhancer -> metrics/tte.json."""
from _run import run

run("evaluate", "--models", "models/fer", "--prepared", "data/prepared", "--degraded", "data/degraded",
    "--enhanced", "data/enhanced", "--out", "metrics/tte.json")
