"""DVC stage `prepare`: dataset (params `dataset`) -> data/prepared/."""
from _run import run

run("prepare", "--out", "data/prepared")
