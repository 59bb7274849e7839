"""DVC stage `report`: metrics/summary.json and plots/report/ (results table, accuracy chart)."""
from _run import run

run("report", "--metrics", "metrics", "--out", "metrics/summary.json", "--plots", "plots/report")
