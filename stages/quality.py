"""DVC stage `quality`: PSNR / SSIM / NIQE per enhancer and variant; paths come from dvc.yaml."""
from _run import run

from llfer.pipeline import quality

run(quality)
