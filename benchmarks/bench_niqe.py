"""Benchmark: our batched NIQE vs the BasicSR 1.4.2 reference, parity and throughput.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_niqe.py [--basicsr DIR] [--data DIR] [-n 100]
        [--out benchmarks/results/niqe.json]

``--basicsr`` is an extracted BasicSR 1.4.2 source distribution (default
$LLFER_BASICSR_SRC, else /tmp/basicsr/basicsr-1.4.2); get it with::

    pip download --no-deps --no-binary :all: --no-build-isolation basicsr==1.4.2 -d /tmp/basicsr
    tar xzf /tmp/basicsr/basicsr-1.4.2.tar.gz -C /tmp/basicsr

Only ``basicsr/metrics/niqe.py`` and the few modules it imports are loaded
(BasicSR is not installed, nor a project dependency); cv2 is stubbed when
absent (niqe.py uses it only for a BGR -> gray conversion we do not call).

Images: the first ``n`` FER2013 test faces (48 x 48 gray JPEGs read from
``fer2013.zip`` in --data / $LLFER_DATA_DIR / <repo>/data/raw), or
seeded synthetic smooth faces when the archive is absent.  Both sides enlarge
them x4 with MATLAB-style bicubic interpolation (BasicSR's ``imresize`` for the
reference), clip, round, and score at 192 x 192.  Two timings: the whole path
from 48 px faces (upsampling included), and NIQE alone on the same 192 px
images.  Timing: best of ``--repeat`` interleaved runs in one process.
Parity is also checked on the faces darkened to 10 % (PIL-style floor) and on
their histogram-equalised versions (many flat regions: NaN handling).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import sys
import time
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def load_basicsr_niqe(src: str | os.PathLike[str]):
    """Import BasicSR's ``basicsr.metrics.niqe`` from an extracted sdist (None if absent)."""
    root = Path(src) / "basicsr"
    if not (root / "metrics" / "niqe.py").exists():
        return None
    try:
        import cv2  # noqa: F401

        stub = False
    except ImportError:  # a stand-in only while niqe.py is imported, so other code still sees no cv2
        sys.modules["cv2"] = types.ModuleType("cv2")
        stub = True

    def load(name: str, path: Path):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    for pkg in ("basicsr", "basicsr.utils", "basicsr.metrics"):  # empty packages: skip the heavy __init__s
        m = types.ModuleType(pkg)
        m.__path__ = []
        sys.modules[pkg] = m
    color = load("basicsr.utils.color_util", root / "utils" / "color_util.py")
    sys.modules["basicsr.utils"].bgr2ycbcr = color.bgr2ycbcr
    load("basicsr.utils.registry", root / "utils" / "registry.py")
    mf = load("basicsr.utils.matlab_functions", root / "utils" / "matlab_functions.py")
    load("basicsr.metrics.metric_util", root / "metrics" / "metric_util.py")
    try:
        with warnings.catch_warnings():  # its `scipy.ndimage.filters` import is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            niqe_mod = load("basicsr.metrics.niqe", root / "metrics" / "niqe.py")
    finally:
        if stub:
            del sys.modules["cv2"]
    niqe_mod.imresize_matlab = mf.imresize
    return niqe_mod


def fer_test_faces(data_dir: Path, n: int) -> np.ndarray | None:
    z = data_dir / "fer2013.zip"
    if not z.exists():
        return None
    from PIL import Image

    with zipfile.ZipFile(z) as zf:
        names = sorted(nm for nm in zf.namelist() if nm.lower().endswith(".jpg") and "test/" in nm)[:n]
        return np.stack([np.asarray(Image.open(io.BytesIO(zf.read(nm))).convert("L")) for nm in names])


def synthetic_faces(n: int, seed: int = 0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((n, 48, 48)), (0, 2.5, 2.5))
    base = (base - base.min(axis=(1, 2), keepdims=True)) / np.ptp(base, axis=(1, 2), keepdims=True)
    return np.clip((0.15 + 0.7 * base + rng.normal(0, 0.02, base.shape)) * 255, 0, 255).astype(np.uint8)


def interleaved_best(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Best-of-``repeat`` wall time of each function, runs interleaved so that all see similar machine load."""
    best = {k: float("inf") for k in fns}
    outs = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            outs[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best, outs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--basicsr", default=os.environ.get("LLFER_BASICSR_SRC", "/tmp/basicsr/basicsr-1.4.2"))
    ap.add_argument("--data", default=os.environ.get("LLFER_DATA_DIR", str(REPO / "data" / "raw")))
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--upsample", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "niqe.json"))
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    from llfer.metrics.niqe import niqe

    ref = load_basicsr_niqe(args.basicsr)
    if ref is None:
        print(f"BasicSR source not found at {args.basicsr}; see the module docstring", file=sys.stderr)
        return 2
    faces = fer_test_faces(Path(args.data), args.n)
    source = "fer2013 test (first n by name)"
    if faces is None:
        faces, source = synthetic_faces(args.n), "synthetic smooth faces (seed 0)"
    up = args.upsample

    def ref_upsampled(imgs):
        return [np.clip(ref.imresize_matlab(f.astype(np.float32) / 255.0, up) * 255.0, 0, 255) for f in imgs]

    def ref_full(imgs):
        return np.array([ref.calculate_niqe(u, 0, input_order="HW") for u in ref_upsampled(imgs)])

    big = np.round(np.stack(ref_upsampled(faces))).astype(np.uint8)  # the same 192 px images for both sides

    def ref_only():
        return np.array([ref.calculate_niqe(b.astype(np.float32), 0, input_order="HW") for b in big])

    niqe(faces[:2], upsample=up)  # warm caches (tables, resize weights)
    t, o = interleaved_best(
        {
            "ours_full": lambda: niqe(faces, upsample=up),
            "basicsr_full": lambda: ref_full(faces),
            "ours_niqe_only": lambda: niqe(big, upsample=1),
            "basicsr_niqe_only": ref_only,
        },
        args.repeat,
    )
    d_full = np.abs(o["ours_full"] - o["basicsr_full"])
    d_only = np.abs(o["ours_niqe_only"] - o["basicsr_niqe_only"])
    # parity also on low-light inputs (PIL-style darkening to 10 %: flat, mostly-zero images) and their HE
    from llfer.enhance.classical.he import HistogramEqualization

    dark = np.floor(faces.astype(np.float64) * 0.1).astype(np.uint8)
    extra = {}
    for name, imgs in (("dark_x0.1", dark), ("dark_x0.1_he", HistogramEqualization().enhance(dark))):
        a, b = niqe(imgs, upsample=up), ref_full(imgs)
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, np.abs(a - b))
        extra[name] = {"max_abs_diff": float(np.max(diff)), "nan_ours": int(np.isnan(a).sum()), "nan_ref": int(np.isnan(b).sum()),
                       "mean_niqe_ours": float(np.nanmean(a)), "mean_niqe_ref": float(np.nanmean(b))}
    t_ours_full, t_ref_full = t["ours_full"], t["basicsr_full"]
    t_ours_only, t_ref_only = t["ours_niqe_only"], t["basicsr_niqe_only"]
    ours_full, ref_full_v = o["ours_full"], o["basicsr_full"]

    res = {
        "images": int(len(faces)),
        "source": source,
        "size": list(faces.shape[1:]),
        "upsample": up,
        "parity": {
            "full_path_max_abs_diff": float(np.nanmax(d_full)),
            "niqe_only_max_abs_diff": float(np.nanmax(d_only)),
            "tolerance": 1e-3,
            "mean_niqe_ours": float(np.nanmean(ours_full)),
            "mean_niqe_ref": float(np.nanmean(ref_full_v)),
            "other_inputs": extra,
        },
        "seconds": {
            "ours_full": t_ours_full,
            "basicsr_full": t_ref_full,
            "ours_niqe_only": t_ours_only,
            "basicsr_niqe_only": t_ref_only,
        },
        "speedup": {"full_path": t_ref_full / t_ours_full, "niqe_only": t_ref_only / t_ours_only},
        "target_speedup": 10.0,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "note": "2 CPU cores shared with other jobs"},
        "repeat": args.repeat,
    }
    print(json.dumps(res, indent=2))
    from llfer.io import write_json

    write_json(args.out, res)
    diffs = [res["parity"]["full_path_max_abs_diff"], res["parity"]["niqe_only_max_abs_diff"]]
    diffs += [v["max_abs_diff"] for v in extra.values()]
    ok = max(diffs) <= 1e-3
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
