"""Score trained learned enhancers (and classical rows) on the test split of a pipeline run's data.

Usage (in a repository where ``train_enhancer@*`` ran, e.g. after the training stages of the
``fer2013-enhancers`` experiment)::

    .venv/bin/python benchmarks/score_learned_enhancers.py [--params params.yaml] [--prepared data/prepared]
        [--degraded data/degraded] [--models models/enhancers] [--classical identity he gain]
        [--out benchmarks/results/enhancers_test.json]

The ``quality`` stage's scores (PSNR capped at 100 dB, SSIM, NIQE on the same fixed random subset of
``quality.niqe_max_images`` faces upsampled ``quality.niqe_upsample`` x) on the ``quality.split`` faces
of every ``enhance.variants`` darkening, computed on those faces only.  The ``enhance`` stage applies
the enhancers to every split of ``enhance.all_splits`` (for FER training on enhanced faces), which for
FER2013 is ~36k faces per learned enhancer; this script is the cheap way to the quality table when only
the test faces matter.  Prints a Markdown table and writes ``--out`` (JSON) and the same table
(``.md``) beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--degraded", default="data/degraded")
    ap.add_argument("--models", default="models/enhancers")
    ap.add_argument("--classical", nargs="*", default=["identity", "he", "gain"])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "enhancers_test.json"))
    args = ap.parse_args(argv)

    import llfer.enhance  # noqa: F401  (registers the enhancers)
    from llfer.config import load_params
    from llfer.data.store import read_dataset
    from llfer.io import write_json
    from llfer.metrics.niqe import niqe
    from llfer.metrics.quality import psnr, ssim
    from llfer.registry import ENHANCERS

    p = load_params(args.params)
    clean = read_dataset(Path(args.prepared))
    idx = clean.split_indices(p.quality.split)
    ref = np.asarray(clean.images[idx])
    rng = np.random.default_rng(p.seed)
    niqe_idx = np.sort(rng.choice(len(idx), min(len(idx), p.quality.niqe_max_images), replace=False))

    def score(imgs: np.ndarray) -> dict[str, float]:
        return {"psnr": float(np.mean(np.minimum(psnr(imgs, ref), 100.0))), "ssim": float(np.mean(ssim(imgs, ref))),
                "niqe": float(np.nanmean(niqe(imgs[niqe_idx], upsample=p.quality.niqe_upsample)))}

    enhancers = {n: ENHANCERS.build(n, **(p.classical.get(n) or {})) for n in args.classical}
    for n in p.learned:
        ckpt = Path(args.models) / n / "model.safetensors"
        if ckpt.exists():
            enhancers[n] = ENHANCERS.get(n).load(ckpt)
        else:
            print(f"skipping {n}: no {ckpt}")
    result: dict = {"split": p.quality.split, "faces": int(len(idx)), "niqe_faces": int(len(niqe_idx)),
                    "clean_niqe": float(np.nanmean(niqe(ref[niqe_idx], upsample=p.quality.niqe_upsample)))}
    lines = [f"| variant | enhancer | PSNR (dB) | SSIM | NIQE | seconds |", "|---|---|---:|---:|---:|---:|"]
    for v in p.enhance.variants:
        low = np.asarray(read_dataset(Path(args.degraded) / v).images[idx])
        rows = {}
        for n, enh in enhancers.items():
            t = time.perf_counter()
            out = low if n == "identity" else enh.enhance(low)
            rows[n] = {**score(out), "seconds": round(time.perf_counter() - t, 1)}
            r = rows[n]
            lines.append(f"| {v} | {n} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['niqe']:.2f} | {r['seconds']} |")
            print(lines[-1], flush=True)
        result[v] = rows
    result["loadavg_1min"] = round(os.getloadavg()[0], 2)
    write_json(args.out, result)
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
