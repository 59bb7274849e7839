"""DVC stage `quality`: PSNR / SSIM / NIQE per enhancer and variant -> metrics/quality.json, plots/quality/."""
from _run import run

run("quality", "--prepared", "data/prepared", "--degraded", "data/degraded", "--enhanced", "data/enhanced",
    "--models", "models/enhancers",
    "--out", "metrics/quality.json", "--plots", "plots/quality")
