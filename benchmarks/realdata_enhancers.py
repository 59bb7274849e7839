"""Real-data enhancer report: every enhancer on darkened FER2013, PSNR / SSIM / NIQE next to [mirnet-fer] Table 2.

Usage::

    .venv/bin/python benchmarks/realdata_enhancers.py [--data-dir DIR] [--eval-subset 1000]
        [--params benchmarks/configs/enhancers_fer2013.yaml] [--only-report]

Steps (each one a ``llfer.pipeline`` function with the params file
``benchmarks/configs/enhancers_fer2013.yaml``; outputs under
``benchmarks/work/enhancers_fer2013/`` (gitignored) are reused when present,
so an interrupted run resumes):

1. ``run_prepare``: FER2013 from ``fer2013.zip`` (DATA_DIR = ``--data-dir``,
   else ``$LLFER_DATA_DIR``, else ``<repo>/data/raw``): 28,709 train
   faces, and the 7,178 faces of ``test/`` split by the reader into val (3,589)
   and test (3,589).
2. ``run_degrade``: ``dark_pil`` (PIL brightness x0.1, [mirnet-fer]) and
   ``dark_gamma`` ([ll-fer] eq. 14, per-image parameters from the face id).
3. ``run_train_enhancer`` for zerodce, mirnet, retinexnet, llenet on the
   (degraded, clean) pairs of the train split, both darkenings, with the
   fixed CPU budget of the params file (iterations, batch, crop).
4. Evaluation sets: **all 7,178** val + test faces (= FER2013's PublicTest +
   PrivateTest, the paper's "7,178 images"), and a fixed random subset of
   ``--eval-subset`` of them (seed 0) for the learned enhancers, whose CPU
   inference is too slow here for all 7,178 x 2 darkenings.  Both are written
   as datasets whose faces are all labelled split ``test`` (the original
   split is kept in column ``orig_split``).
5. ``run_enhance`` (every classical enhancer on the 7,178; every enhancer on
   the subset) and ``run_quality`` (PSNR / SSIM vs the clean face; NIQE on a
   fixed random 200 of the scored faces, upsampled x4).

Results: ``benchmarks/results/enhancers_fer2013.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
WORK = REPO / "benchmarks" / "work" / "enhancers_fer2013"
RESULTS = REPO / "benchmarks" / "results"
LEARNED = ["zerodce", "mirnet", "retinexnet", "llenet"]
CLASSICAL = ["identity", "he", "clahe", "agc", "retinex", "gain"]

#: [mirnet-fer] Table 2: (PSNR dB, SSIM) on the 7,178 FER2013 faces darkened to 10 % (PIL); enhancers trained on LOL
PAPER_TABLE2 = {
    "mirnet": {"scratch": (30.03, 0.938), "pretrained": (29.91, 0.935)},
    "retinexnet": {"scratch": (16.75, 0.729), "pretrained": (16.75, 0.729)},
    "agc": (13.70, 0.594),
    "retinex": (12.50, 0.735),
    "identity": (6.321, 0.062),
}


def rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def write_eval_set(prepared: Path, degraded: Path, variants: list[str], out: Path, n: int | None, seed: int) -> int:
    """val + test faces (optionally a fixed random subset) as a prepared dir + degraded/<variant> dirs, split 'test'."""
    from llfer.data.store import read_dataset, write_dataset

    if (out / "prepared" / "meta.json").exists() and all((out / "degraded" / v / "meta.json").exists() for v in variants):
        return int(json.loads((out / "prepared" / "meta.json").read_text())["num_images"])
    clean = read_dataset(prepared)
    idx = np.flatnonzero(clean.index["split"].isin(["val", "test"]).to_numpy())
    if n is not None and n < len(idx):
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    index = clean.index.iloc[idx].reset_index(drop=True).copy()
    index["orig_split"] = index["split"]
    index["split"] = "test"
    prov = {"from": rel(prepared), "faces": "FER2013 val + test (PublicTest + PrivateTest)", "subset": n, "seed": seed}
    write_dataset(out / "prepared", np.asarray(clean.images[idx]), index, classes=clean.classes, provenance=prov)
    for v in variants:
        dv = read_dataset(degraded / v)
        if list(dv.ids) != list(clean.ids):
            raise SystemExit(f"{degraded / v}: ids differ from {prepared}")
        write_dataset(out / "degraded" / v, np.asarray(dv.images[idx]), index, classes=clean.classes,
                      provenance={**prov, "variant": v, "from": rel(degraded / v)})
    return len(idx)


def fmt(x: float | None, nd: int) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{nd}f}"


def paper_cell(m: str) -> str:
    t = PAPER_TABLE2.get(m)
    if t is None:
        return "-"
    if isinstance(t, dict):
        return " / ".join(f"{k}: {a:.2f} dB, {b:.3f}" for k, (a, b) in t.items())
    return f"{t[0]:.2f} dB, {t[1]:.3f}"


def markdown(res: dict) -> str:
    variants = res["variants"]
    lines = [
        "# Enhancers on darkened FER2013 (CPU) vs [mirnet-fer] Table 2",
        "",
        f"Generated by `benchmarks/realdata_enhancers.py` with `{res['params_file']}` ({res['date']}).",
        "PSNR (dB, capped at 100) and SSIM are means over the scored faces against the clean face "
        "(scikit-image-compatible, 7x7 window); NIQE (lower is better, MATLAB-compatible) on a fixed random "
        f"{res['niqe']['images']} of them, each face upsampled x{res['niqe']['upsample']} (bicubic) to 192 px. "
        f"Clean faces' NIQE: {fmt(res['clean_niqe'].get('all'), 2)} (7,178 set), {fmt(res['clean_niqe'].get('subset'), 2)} (subset).",
        "",
        f"* **7,178**: all FER2013 `test/` faces (our val + test splits = PublicTest + PrivateTest), classical enhancers.",
        f"* **subset**: a fixed random {res['subset_size']} of those 7,178 (seed 0), every enhancer "
        "(the learned ones' CPU inference is too slow here for all 7,178 x 2 darkenings).",
        "",
    ]
    for v in variants:
        lines += [f"## {v}: {res['variant_desc'][v]}", "",
                  "| enhancer | PSNR 7,178 | SSIM 7,178 | NIQE 7,178 | PSNR subset | SSIM subset | NIQE subset | [mirnet-fer] Table 2 (PSNR, SSIM) |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for m in CLASSICAL + LEARNED:
            a = res["all"].get(v, {}).get(m, {})
            s = res["subset"].get(v, {}).get(m, {})
            label = "identity (darkened input)" if m == "identity" else m
            paper = paper_cell(m) if v == "dark_pil" else "-"
            lines.append(f"| {label} | {fmt(a.get('psnr'), 2)} | {fmt(a.get('ssim'), 3)} | {fmt(a.get('niqe'), 2)} | "
                         f"{fmt(s.get('psnr'), 2)} | {fmt(s.get('ssim'), 3)} | {fmt(s.get('niqe'), 2)} | {paper} |")
        lines.append("")
    lines += ["## Learned enhancers: CPU training budget", "",
              "| enhancer | preset | params | iterations | batch | crop | optimizer, lr | pairs | seconds | images/s | first loss | last loss |",
              "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for m in LEARNED:
        t = res["training"].get(m)
        if not t:
            continue
        c = res["learned_cfg"][m]
        lines.append(f"| {m} | {c['model'].get('preset')} | {t['params']:,} | {t['iterations']} | {c['train']['batch_size']} | "
                     f"{c['train']['patch']} | {c['train']['optimizer']} {c['train']['lr']:g} | {t['pairs']:,} | {t['seconds']:.0f} | "
                     f"{t['images_per_second']:.1f} | {fmt(t['first_loss'], 4)} | {fmt(t['last_loss'], 4)} |")
    lines += ["", "Inference seconds on the subset (both darkenings): " +
              ", ".join(f"{m} {sum(x['seconds'] for x in res['enhance_subset'][m].values()):.0f} s"
                        for m in LEARNED if m in res["enhance_subset"]), ""]
    lines += ["## Reading the numbers", ""] + [f"* {n}" for n in res["notes"]] + [""]
    lines += ["## Reproduce", "", "```", *res["commands"], "```", ""]
    return "\n".join(lines)


NOTES = [
    "Protocol difference. [mirnet-fer] trained MIRNet (published 31.8 M-parameter network) and RetinexNet on LOL "
    "(400 + 100 pairs of 400x600 photos, GPU, grid search SGD/Adam x 1e-3/1e-4, best MIRNet: SGD 1e-3) and only "
    "tested on the darkened FER2013 faces. Here each learned enhancer is trained on FER2013's own training faces "
    "(57,418 pairs: both darkenings of the 28,709 train faces, as the pipeline's train_enhancer does) with the small "
    "'cpu' presets (MIRNet 58 k parameters) for 4-8 minutes of a shared 2-core CPU: 50-300 steps of 16 32x32 crops, "
    "i.e. 1.4-8.4 % of one pass over the pairs. Their training losses were still falling (first/last loss in the "
    "budget table): the learned rows are an honest smoke-level real-data result of the code, not a reproduction of "
    "the paper's training, and they are far below the paper's MIRNet 30.03 dB / RetinexNet 16.75 dB.",
    "MIRNet and LLENet stay close to the dark input on dark_pil (6.9 / 10.3 dB): in so few steps they learned a "
    "moderate brightening that suits the brighter dark_gamma inputs (MIRNet 14.4 dB there) but not the x10 gain "
    "that PIL x0.1 needs. RetinexNet's decomposition x relighting amplifies noise and quantisation of the 0-25 "
    "grey levels (NIQE 19). Zero-DCE (zero-reference, exposure pulled to 0.6) is the best learned enhancer on both "
    "darkenings (16.2 / 17.4 dB, SSIM 0.81 / 0.83) because its curve model is a per-pixel brightening, which is "
    "what this synthetic darkening undoes.",
    "HE (36.5 dB, SSIM 0.993) and the global gain (34.1 dB) beat the paper's best row (MIRNet 30.03 dB) on dark_pil. "
    "PIL darkening floor(v * 0.1) is a monotone global map, and FER2013 faces are mostly well spread over 0-255 "
    "(many nearly histogram-equalised already): HE of the darkened face maps each of its ~26 grey levels back to "
    "the equalised value of the clean face, and a gain of ~10 nearly inverts the scale. A per-image global curve is "
    "the right model for a synthetic global darkening; a network trained on LOL (real, noisy, colour) is not.",
    "dark_gamma (beta * (alpha * I) ** gamma, gamma up to 5) is not undone by one gain: gain drops to 15.1 dB and HE "
    "to 21.7 dB (still the best row); AGC (15.9 dB) and Zero-DCE (17.4 dB) are in between. CLAHE (clip limit 2, "
    "4x4 tiles) limits the contrast stretch by design, so on dark_pil its output stays dark (6.99 dB).",
    "AGC and Retinex follow their papers' formulas (tests/test_classical.py). Our AGC is above the paper's "
    "(17.20 vs 13.70 dB, SSIM 0.775 vs 0.594); our Retinex (automated MSRCR) has a higher PSNR (14.63 vs 12.50 dB) but "
    "lower SSIM (0.613 vs 0.735). The paper does not give its AGC / Retinex implementations or parameters.",
    "Our darkened input (identity) scores 5.41 dB / 0.049 against the paper's 6.321 / 0.062. The paper does not say how "
    "it stored the darkened faces or averaged PSNR (per image or over the set, RGB or gray, JPEG re-encoding); "
    "ours is exact floor(v * 0.1) on the 8-bit gray faces, PSNR averaged per image (capped at 100 dB), scikit-image "
    "SSIM (7x7 window). Small offsets between our rows and the paper's can come from these conventions.",
    "NIQE (lower is better) of the clean faces is about 8.3 on these 48-px faces upsampled x4; most enhancers land "
    "between 8.2 and 9, so on faces this small NIQE mainly flags the outliers (RetinexNet 19.1 on dark_pil, "
    "Retinex 16.6 on dark_gamma, the dark inputs ~11). Zero-DCE's 8.19 on dark_pil is below the clean faces' own score: "
    "NIQE rewards 'natural' statistics, not fidelity.",
    "7,178 vs subset: the classical rows agree to <= 0.2 dB between all 7,178 faces and the 1,000-face subset, so "
    "the subset rows of the learned enhancers are comparable with the full-set rows.",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(REPO / "benchmarks" / "configs" / "enhancers_fer2013.yaml"))
    ap.add_argument("--data-dir", default=os.environ.get("LLFER_DATA_DIR", str(REPO / "data" / "raw")))
    ap.add_argument("--eval-subset", type=int, default=1000, help="faces of the 7,178 scored with the learned enhancers")
    ap.add_argument("--work", default=str(WORK))
    ap.add_argument("--only-report", action="store_true", help="rebuild the .md (and the notes) from the .json")
    args = ap.parse_args(argv)

    out_json, out_md = RESULTS / "enhancers_fer2013.json", RESULTS / "enhancers_fer2013.md"
    if args.only_report:  # refresh the notes and the table from the saved results
        res = json.loads(out_json.read_text())
        res["notes"] = NOTES
        out_json.write_text(json.dumps(res, indent=2) + "\n")
        out_md.write_text(markdown(res))
        return 0

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from llfer.config import load_params
    from llfer.io import write_json, write_text
    from llfer.pipeline import run_degrade, run_enhance, run_prepare, run_quality, run_train_enhancer
    from llfer.runfacts import FACTS

    p = load_params(args.params)
    work = Path(args.work)
    prepared, degraded, models = work / "prepared", work / "degraded", work / "models"
    variants = list(p.enhance.variants)
    times: dict[str, float] = {}
    load = {"before": loadavg()}

    def step(name: str, fn, *a, **kw):
        t = time.perf_counter()
        print(f"== {name}", flush=True)
        r = fn(*a, **kw)
        times[name] = round(time.perf_counter() - t, 1)
        print(f"   {name}: {times[name]} s (load {loadavg()})", flush=True)
        return r

    archive = Path(args.data_dir) / "fer2013.zip"
    if not (prepared / "meta.json").exists():
        if not archive.exists():
            raise SystemExit(f"{archive} not found (set --data-dir or $LLFER_DATA_DIR)")
        step("prepare", run_prepare, p, prepared, source=str(archive))
    if not all((degraded / v / "meta.json").exists() for v in variants):
        step("degrade", run_degrade, p, prepared, degraded)

    training = {}
    for e in LEARNED:
        d = models / e
        facts = work / f"train_enhancer_{e}.facts.json"  # speed and device: run facts, not in summary.json
        if not (d / "summary.json").exists():
            FACTS.clear()
            step(f"train_enhancer@{e}", run_train_enhancer, p, e, prepared, degraded, d)
            facts.write_text(json.dumps({"seconds": FACTS["train_seconds"], **FACTS}))
        training[e] = {**json.loads((d / "summary.json").read_text()),
                       **(json.loads(facts.read_text()) if facts.exists() else {})}

    n_all = step("eval set 7,178", write_eval_set, prepared, degraded, variants, work / "eval_all", None, p.seed)
    n_sub = step("eval subset", write_eval_set, prepared, degraded, variants, work / "eval_subset", args.eval_subset, p.seed)

    enh_all, enh_sub = {}, {}
    for e in CLASSICAL:
        d = work / "eval_all" / "enhanced" / e
        info = work / "eval_all" / f"enhance_{e}.json"
        if (d / variants[-1] / "meta.json").exists() and info.exists():
            enh_all[e] = json.loads(info.read_text())
            continue
        enh_all[e] = step(f"enhance 7,178 {e}", run_enhance, p, e, work / "eval_all" / "degraded", d)
        write_json(info, enh_all[e])
    for e in CLASSICAL + LEARNED:
        d = work / "eval_subset" / "enhanced" / e
        if (d / variants[-1] / "meta.json").exists() and (work / "eval_subset" / f"enhance_{e}.json").exists():
            enh_sub[e] = json.loads((work / "eval_subset" / f"enhance_{e}.json").read_text())
            continue
        enh_sub[e] = step(f"enhance subset {e}", run_enhance, p, e, work / "eval_subset" / "degraded", d,
                          model_dir=models / e if e in LEARNED else None)
        write_json(work / "eval_subset" / f"enhance_{e}.json", enh_sub[e])

    q_all = step("quality 7,178", run_quality, p, work / "eval_all" / "prepared", work / "eval_all" / "degraded",
                 work / "eval_all" / "enhanced", work / "eval_all" / "quality.json", work / "eval_all" / "plots",
                 enhancers=CLASSICAL)
    q_sub = step("quality subset", run_quality, p, work / "eval_subset" / "prepared", work / "eval_subset" / "degraded",
                 work / "eval_subset" / "enhanced", work / "eval_subset" / "quality.json", work / "eval_subset" / "plots",
                 enhancers=CLASSICAL + LEARNED)
    load["after"] = loadavg()

    def rows(q: dict) -> dict:
        return {v: {("identity" if m == "input" else m): s for m, s in q.get(v, {}).items()} for v in variants}

    res = {
        "benchmark": "every enhancer on darkened FER2013: PSNR / SSIM / NIQE, next to [mirnet-fer] Table 2",
        "params_file": rel(Path(args.params)),
        "dataset": {"archive": "fer2013.zip (DATA_DIR)", "train_faces": int(training["zerodce"]["pairs"] // len(variants)),
                    "eval_faces_all": n_all, "eval_faces": "FER2013 test/ folder = our val + test splits (PublicTest + PrivateTest)"},
        "subset_size": n_sub,
        "variants": variants,
        "variant_desc": {"dark_pil": "PIL ImageEnhance.Brightness(0.1) = floor(v * 0.1) ([mirnet-fer])",
                         "dark_gamma": "beta * (alpha * I) ** gamma, alpha ~ U[0.9, 1], beta ~ U[0.5, 1], gamma ~ U[1.5, 5] per face ([ll-fer] eq. 14)"},
        "niqe": {"images": p.quality.niqe_max_images, "upsample": p.quality.niqe_upsample, "subset_seed": p.seed},
        "clean_niqe": {"all": q_all.get("clean", {}).get("reference", {}).get("niqe"),
                       "subset": q_sub.get("clean", {}).get("reference", {}).get("niqe")},
        "all": rows(q_all),
        "subset": rows(q_sub),
        "training": training,
        "learned_cfg": {e: p.learned[e].model_dump() for e in LEARNED},
        "enhance_subset": enh_sub,
        "enhance_all": enh_all,
        "paper_table2_mirnet_fer": PAPER_TABLE2,
        "step_seconds": times,
        "notes": NOTES,
        "commands": [
            "# data: fer2013.zip in $LLFER_DATA_DIR (default <repo>/data/raw)",
            ".venv/bin/python benchmarks/realdata_enhancers.py --eval-subset 1000",
            "# rebuild the .md from the .json: .venv/bin/python benchmarks/realdata_enhancers.py --only-report",
            "# reuses benchmarks/work/enhancers_fer2013/*; delete it to start over",
        ],
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_1min": load, "note": "2 CPU cores shared with other long jobs"},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(out_json, res)
    write_text(out_md, markdown(res))
    print(out_md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
