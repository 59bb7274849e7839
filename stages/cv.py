"""DVC stage `cv`: stratified k-fold cross-validation -> metrics/cv.json."""
from _run import run

run("cv", "--prepared", "data/prepared", "--degraded", "data/degraded", "--out", "metrics/cv.json")
