"""Metrics: image quality (PSNR, SSIM, NIQE in :mod:`llfer.metrics.quality`) and classification scores."""
