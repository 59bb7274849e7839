"""PSNR / SSIM of ``dark_pil`` (factor 0.1) against the clean FER2013 test faces, next to [mirnet-fer]'s Table 2.

Usage::

    .venv/bin/python benchmarks/realdata_dark_quality.py [DATA_DIR] [--prepared DIR] [--out benchmarks/results/dark_quality.json]

DATA_DIR defaults to $LLFER_DATA_DIR, else <repo>/data/raw; the faces
are read from ``DATA_DIR/fer2013.zip`` by the ``fer2013`` reader (or from an
already prepared dataset with ``--prepared``).  [mirnet-fer] (sec. 4.4.1, Table 2)
scores its "Darkened Images" (PIL ``ImageEnhance.Brightness``, 10 %) on "the
synthesized FER2013 dataset with a total of 7,178 images" -- the archive's
``test/`` folder = PublicTest (our ``val``, 3,589) + PrivateTest (our ``test``,
3,589) -- and reports PSNR 6.321 dB, SSIM 0.062.  It does not say how PSNR and
SSIM were computed (library, window, colour handling, per-image mean or
pooled), so this script reports our main numbers (``llfer.metrics.quality``:
scikit-image defaults, per-image mean) and the usual alternatives beside them.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

MIRNET_FER = {"psnr_db": 6.321, "ssim": 0.062, "source": "[mirnet-fer], Table 2, 'Darkened Images'",
           "images": "FER2013 test, 7,178 faces (PublicTest + PrivateTest)", "darkening": "PIL ImageEnhance.Brightness 10 %"}
FACTOR = 0.1


def load_faces(data_dir: Path, prepared: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Clean 48x48 faces of the val (PublicTest) and test (PrivateTest) splits, and their split names."""
    from llfer.data import read_dataset

    if prepared is not None:
        ds = read_dataset(prepared)
        images, index, where = ds.images, ds.index, str(prepared)
    else:
        from llfer.data.fer import read_fer2013

        archive = data_dir / "fer2013.zip"
        if not archive.is_file():
            raise SystemExit(f"{archive} not found (give DATA_DIR, set LLFER_DATA_DIR, or use --prepared)")
        p = read_fer2013(archive)
        images, index, where = p.images, p.index, str(archive)
    mask = index["split"].isin(["val", "test"]).to_numpy()
    return np.asarray(images[mask]), index["split"].to_numpy()[mask], where


def scores(dark: np.ndarray, clean: np.ndarray) -> dict:
    """Mean per-image PSNR (identical pairs, i.e. all-black faces, capped at 100 dB as ``mean_score`` does; also
    the mean without them), mean SSIM, median PSNR and the PSNR of the pooled MSE."""
    from llfer.metrics.quality import mean_score, psnr, ssim

    p = psnr(dark, clean)
    s = ssim(dark, clean)
    finite = np.isfinite(p)
    mse = float(np.mean((clean.astype(np.float64) - dark.astype(np.float64)) ** 2))
    return {"n": int(len(clean)), "psnr_db": round(mean_score(p), 4), "ssim": round(float(np.mean(s)), 4),
            "identical_pairs": int((~finite).sum()), "psnr_db_without_identical": round(float(p[finite].mean()), 4),
            "psnr_db_median": round(float(np.median(p)), 4), "psnr_db_pooled_mse": round(10 * np.log10(255.0**2 / mse), 4)}


def gaussian_ssim(dark: np.ndarray, clean: np.ndarray) -> float:
    """Mean SSIM with Wang et al.'s settings (11x11 Gaussian window, sigma 1.5, population covariance), via scikit-image."""
    from skimage.metrics import structural_similarity

    return float(np.mean([structural_similarity(c, d, data_range=255, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False) for c, d in zip(clean, dark)]))


def jpeg_roundtrip(images: np.ndarray, quality: int = 75) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(images)
    for i, im in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", default=os.environ.get("LLFER_DATA_DIR") or str(REPO / "data" / "raw"))
    ap.add_argument("--prepared", help="an already prepared FER2013 dataset directory (instead of reading the zip)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dark_quality.json"))
    args = ap.parse_args(argv)

    from llfer.degrade import dark_pil
    from llfer.metrics.quality import mean_score, psnr, ssim

    t0 = time.perf_counter()
    clean, split, where = load_faces(Path(args.data_dir), Path(args.prepared) if args.prepared else None)
    dark = dark_pil(clean, factor=FACTOR)
    main_rows = {"val+test (7,178, [mirnet-fer]'s set)": scores(dark, clean),
                 "val (PublicTest)": scores(dark[split == "val"], clean[split == "val"]),
                 "test (PrivateTest)": scores(dark[split == "test"], clean[split == "test"])}
    both = main_rows["val+test (7,178, [mirnet-fer]'s set)"]

    # Alternatives on the 7,178 faces: what a different (unstated) protocol would give.
    rgb_c, rgb_d = np.repeat(clean[..., None], 3, -1), np.repeat(dark[..., None], 3, -1)
    dj = jpeg_roundtrip(dark)
    dr = np.clip(np.rint(clean * FACTOR), 0, 255).astype(np.uint8)
    alt = {
        "ssim_gaussian_11x11_sigma1.5 (Wang et al. / MATLAB / tf.image.ssim)": round(gaussian_ssim(dark, clean), 4),
        "rgb_3_channel (gray replicated, as a JPEG loaded as RGB)": {
            "psnr_db": round(mean_score(psnr(rgb_d, rgb_c)), 4), "ssim": round(float(np.mean(ssim(rgb_d, rgb_c))), 4)},
        "dark_saved_as_jpeg_q75 (PIL default quality) then scored": {
            "psnr_db": round(mean_score(psnr(dj, clean)), 4), "ssim": round(float(np.mean(ssim(dj, clean))), 4)},
        "rounded_instead_of_floored (rint(v * 0.1))": {
            "psnr_db": round(mean_score(psnr(dr, clean)), 4), "ssim": round(float(np.mean(ssim(dr, clean))), 4)},
    }
    sweep = {}
    for f in (0.1, 0.12, 0.15, 0.19, 0.2):
        d = dark_pil(clean, factor=f)
        sweep[str(f)] = {"psnr_db": round(mean_score(psnr(d, clean)), 3), "ssim": round(float(np.mean(ssim(d, clean))), 4)}
    secs = time.perf_counter() - t0

    alt_psnr = [both["psnr_db_median"], both["psnr_db_pooled_mse"], both["psnr_db_without_identical"]] + [v["psnr_db"] for v in alt.values() if isinstance(v, dict)]
    alt_ssim = [v["ssim"] if isinstance(v, dict) else v for v in alt.values()]
    comparison = (
        f"ours {both['psnr_db']:.3f} dB / SSIM {both['ssim']:.3f} vs [mirnet-fer] {MIRNET_FER['psnr_db']} dB / {MIRNET_FER['ssim']}: "
        f"{both['psnr_db'] - MIRNET_FER['psnr_db']:+.3f} dB, SSIM {both['ssim'] - MIRNET_FER['ssim']:+.3f}. "
        "Same count of faces (the 7,178 test JPEGs) and the same darkening (bit-identical to "
        "ImageEnhance.Brightness(0.1)). [mirnet-fer] does not state its PSNR/SSIM implementation, SSIM window, colour "
        "handling or averaging; the alternatives tried here (median or pooled-MSE PSNR, PSNR without the one all-black face, Gaussian-window SSIM, "
        "3-channel RGB, JPEG re-save of the darkened faces, rounding instead of flooring) give PSNR "
        f"{min(alt_psnr):.2f}-{max(alt_psnr):.2f} dB and SSIM {min(alt_ssim):.3f}-{max(alt_ssim):.3f}, none reaching "
        f"the paper's values, and no darkening factor matches both of them (PSNR {sweep['0.19']['psnr_db']:.2f} dB "
        f"needs a factor of ~0.19, where SSIM is already {sweep['0.19']['ssim']:.2f}). So the gap most likely comes "
        "from the paper's unstated scoring protocol rather than from the darkening; both agree that 10 % brightness "
        "leaves a PSNR of about 5-6 dB and an SSIM of about 0.05-0.06."
    )
    print(f"faces: {len(clean)} from {where}  (dark_pil factor {FACTOR})")
    print(f"{'set':34s} {'n':>5s} {'PSNR dB':>8s} {'SSIM':>7s} {'median':>7s} {'pooled':>7s} {'w/o identical':>13s}")
    for name, r in main_rows.items():
        print(f"{name:34s} {r['n']:5d} {r['psnr_db']:8.3f} {r['ssim']:7.4f} {r['psnr_db_median']:7.3f} "
              f"{r['psnr_db_pooled_mse']:7.3f} {r['psnr_db_without_identical']:8.3f} ({r['identical_pairs']} identical)")
    print(f"{'[mirnet-fer] Table 2 (Darkened Images)':34s} {7178:5d} {MIRNET_FER['psnr_db']:8.3f} {MIRNET_FER['ssim']:7.4f}")
    for k, v in alt.items():
        print(f"  {k}: {v}")
    print("  factor sweep (PSNR dB, SSIM): " + ", ".join(f"{f}: {v['psnr_db']}/{v['ssim']}" for f, v in sweep.items()))
    print(comparison)

    doc = {
        "benchmark": "PSNR/SSIM of dark_pil (factor 0.1) vs the clean FER2013 test faces",
        "faces": {"source": where, "splits": "val = PublicTest, test = PrivateTest (the archive's test/ folder)", "size": [48, 48],
                  "channels": 1},
        "darkening": "llfer.degrade.dark_pil, factor 0.1 = floor(v * 0.1), bit-identical to PIL ImageEnhance.Brightness(0.1)",
        "metrics": "llfer.metrics.quality: PSNR (data_range 255) and SSIM with scikit-image defaults (7x7 uniform window, "
                   "sample covariance, K1 0.01, K2 0.03, border of 3 px excluded); per-image scores averaged; an "
                   "identical pair (the all-black face PublicTest_5543497 stays black) has PSNR +inf, capped at "
                   "100 dB by llfer.metrics.quality.mean_score (psnr_db_without_identical leaves it out)",
        "ours": main_rows,
        "mirnet_fer": MIRNET_FER,
        "difference_vs_paper": {"psnr_db": round(both["psnr_db"] - MIRNET_FER["psnr_db"], 3), "ssim": round(both["ssim"] - MIRNET_FER["ssim"], 4)},
        "alternatives_on_7178": alt,
        "factor_sweep": sweep,
        "comparison": comparison,
        "seconds": round(secs, 2),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    from llfer.io import write_json

    write_json(args.out, doc)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
