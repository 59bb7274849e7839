"""Benchmark: the classical enhancers over the 7,178 FER2013 test faces (speed, PSNR/SSIM vs clean).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_classical.py [--data DIR] [--factor 0.1]
        [--out benchmarks/results/classical.json]

Faces: every JPEG under ``test/`` of ``fer2013.zip`` (48 x 48 gray, 7,178),
read straight from the archive in --data / $LLFER_DATA_DIR /
<repo>/data/raw; without the archive, 7,178 seeded synthetic smooth
faces stand in (and the quality numbers mean little).  They are darkened as
PIL's ``ImageEnhance.Brightness(f)`` does (v -> floor(v * f)),
then each classical enhancer runs once over the whole batch (wall time, one
process); PSNR and SSIM of its output against the clean faces are averaged
(PSNR capped at 100 dB).  Target: <= 30 s per enhancer on 2 shared CPU cores.
[mirnet-fer]'s Table 2 (same darkening at 10 %, FER2013 test) is quoted for
comparison.

HE and CLAHE call OpenCV; the same run also times llfer's former NumPy
versions of both (``tests/numpy_he_clahe.py``, kept as the test reference) on
the same dark faces, best of ``--repeat`` runs each, and records ms per face,
the speed ratio and whether the outputs are identical (``opencv_vs_numpy``).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # numpy_he_clahe: the former NumPy HE / CLAHE

LIMIT_S = 30.0
PAPER_TABLE2 = {  # [mirnet-fer], Table 2: PSNR (dB), SSIM on the darkened FER2013 test set
    "darkened": (6.321, 0.062),
    "agc": (13.70, 0.594),
    "retinex": (12.50, 0.735),
}


def fer_test_faces(data_dir: Path) -> np.ndarray | None:
    z = data_dir / "fer2013.zip"
    if not z.exists():
        return None
    from PIL import Image

    with zipfile.ZipFile(z) as zf:
        names = sorted(nm for nm in zf.namelist() if nm.lower().endswith(".jpg") and "test/" in nm)
        return np.stack([np.asarray(Image.open(io.BytesIO(zf.read(nm))).convert("L")) for nm in names])


def synthetic_faces(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    face = np.exp(-(((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.38) ** 2))
    out = 60 + 140 * face[None] * rng.uniform(0.6, 1.0, (n, 1, 1)) + rng.normal(0, 12, (n, 48, 48))
    return np.clip(out, 0, 255).astype(np.uint8)


def _best_ms_per_face(fn, x: np.ndarray, repeat: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(max(repeat, 1)):
        t = time.perf_counter()
        out = fn(x)
        best = min(best, time.perf_counter() - t)
    return 1000 * best / len(x), out


def opencv_vs_numpy(dark: np.ndarray, repeat: int) -> dict:
    """ms per face of the OpenCV HE / CLAHE enhancers and of the former NumPy code, in one run."""
    import numpy_he_clahe as ref

    from llfer.registry import ENHANCERS

    cases = {
        "he": (ENHANCERS.build("he").enhance, ref.equalize),
        "clahe (clip 2, 8x8 tiles)": (ENHANCERS.build("clahe").enhance, lambda v: ref.clahe(v, 2.0, (8, 8))),
        "clahe (clip 2, 4x4 tiles)": (ENHANCERS.build("clahe", tiles=[4, 4]).enhance, lambda v: ref.clahe(v, 2.0, (4, 4))),
    }
    out = {}
    print(f"{'OpenCV vs NumPy':26s} {'cv2 ms':>8s} {'numpy ms':>9s} {'ratio':>6s} identical")
    for name, (cv_fn, np_fn) in cases.items():
        t_cv, y_cv = _best_ms_per_face(cv_fn, dark, repeat)
        t_np, y_np = _best_ms_per_face(np_fn, dark, repeat)
        same = bool(np.array_equal(y_cv, y_np))
        out[name] = {"opencv_ms_per_face": t_cv, "numpy_ms_per_face": t_np, "numpy_over_opencv": t_np / t_cv,
                     "identical": same}
        print(f"{name:26s} {t_cv:8.4f} {t_np:9.4f} {t_np / t_cv:6.1f} {same}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("LLFER_DATA_DIR", str(REPO / "data" / "raw")))
    ap.add_argument("--factor", type=float, default=0.1, help="PIL brightness factor of the darkening")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "classical.json"))
    ap.add_argument("--repeat", type=int, default=3, help="runs per method in the OpenCV vs NumPy timing (best kept)")
    args = ap.parse_args(argv)

    import cv2

    from llfer.io import write_json
    from llfer.metrics.quality import mean_score, psnr, ssim
    from llfer.registry import ENHANCERS, import_all

    import_all()

    t0 = time.perf_counter()
    clean = fer_test_faces(Path(args.data))
    source = "fer2013 test (all test/ JPEGs)"
    if clean is None:
        clean, source = synthetic_faces(7178), "synthetic faces (seed 0)"
    t_read = time.perf_counter() - t0
    dark = np.floor(clean.astype(np.float64) * args.factor).astype(np.uint8)

    names = [n for n in ENHANCERS.names() if not ENHANCERS.get(n).learned]
    rows = {}
    print(f"{len(clean)} faces {clean.shape[1:]} from {source} (read in {t_read:.1f} s), darkened x{args.factor}")
    print(f"{'enhancer':10s} {'seconds':>8s} {'ms/face':>8s} {'PSNR':>7s} {'SSIM':>6s}")
    for name in names:
        enh = ENHANCERS.build(name)
        t = time.perf_counter()
        out = enh.enhance(dark)
        dt = time.perf_counter() - t
        p, s = mean_score(psnr(out, clean)), mean_score(ssim(out, clean), cap=None)
        rows[name] = {
            "seconds": dt,
            "ms_per_face": 1000 * dt / len(clean),
            "psnr_db": p,
            "ssim": s,
            "within_limit": dt <= LIMIT_S,
            "params": ENHANCERS.entry(name).defaults,
        }
        print(f"{name:10s} {dt:8.2f} {1000 * dt / len(clean):8.3f} {p:7.2f} {s:6.3f}")
    vs = opencv_vs_numpy(dark, args.repeat)
    res = {
        "images": int(len(clean)),
        "source": source,
        "size": list(clean.shape[1:]),
        "darkening": f"floor(v * {args.factor}) (PIL ImageEnhance.Brightness)",
        "limit_s": LIMIT_S,
        "enhancers": rows,
        "opencv_vs_numpy": vs,
        "paper_table2_mirnet_fer": {k: {"psnr_db": v[0], "ssim": v[1]} for k, v in PAPER_TABLE2.items()},
        "machine": {"python": platform.python_version(), "opencv": cv2.__version__, "cpus": os.cpu_count(), "note": "CPU cores shared with other jobs"},
    }
    write_json(args.out, res)
    return 0 if all(r["within_limit"] for r in rows.values()) and all(v["identical"] for v in vs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
