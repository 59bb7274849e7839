"""DVC stage `degrade`: data/prepared/ -> data/degraded/<variant>/ (params `degrade`, `seed`)."""
from _run import run

run("degrade", "--prepared", "data/prepared", "--out", "data/degraded")
