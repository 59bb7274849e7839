"""Benchmark: faces per second of every FER backbone, alone and behind each learned enhancer, at batch 1 and
batched, in PyTorch and in ONNX Runtime side by side ([efc-lowres] reports frames per second on low-cost
hardware); plus whole ``llfer predict`` pictures per second (Haar detection + classification).

Usage::

    .venv/bin/python benchmarks/bench_fps.py [--backbones ...] [--enhancers ...] [--enhancer-backbones mini_xception]
        [--batches 1 32] [--seconds 2] [--threads 1] [--device cpu|cuda] [--no-predict]
        [--out benchmarks/results/fps.json]

What is timed, per (model, batch, runtime):

* **model**: a backbone built as ``train-fer`` builds it by default (``llfer list``: its default
  ``input_size``, grey input, 7 classes, seeded random weights: speed does not depend on them), or a
  learned enhancer (``preset: cpu``, as ``params.yaml``) in front of ``--enhancer-backbones``, as
  ``llfer export --enhancer`` joins them (one graph: grey -> RGB, enhancer, clamp, grey, 8-bit rounding,
  classifier).
* **PyTorch**: the float32 module in eager mode under ``torch.inference_mode`` on float N x 1 x S x S
  input in [0, 1] (what ``llfer predict`` runs after preparing the faces); ``torch.set_num_threads``
  (default 1: on this shared 2-core machine, 2 threads under load made PyTorch 10-200x slower, its OpenMP
  workers waiting on each other; ONNX Runtime suffered far less).
* **ONNX Runtime**: the same module exported by ``llfer export``'s exporter (TorchScript-based, opset 17,
  dynamic batch), CPU execution provider, ``intra_op_num_threads`` = the same thread count.  Each export is
  checked against PyTorch first (largest absolute logit difference, reported).
* faces/s = faces in the timed calls / their wall time; two warm-up calls, then calls until ``--seconds``
  have passed (at least 3).

``predict`` rows: whole ``Predictor.faces`` + ``classify`` on a 640 x 480 grey picture with two 96 px
synthetic faces (Haar cascade, crop, resize, mini-Xception), pictures/s, per enhancer in front (classical
ones by name, learned ones with ``preset: cpu`` and random weights; speed only).

The machine may be shared: the 1-minute load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def cpu_name() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def classifier(backbone: str, seed: int = 0):
    """A ``Classifier`` as ``llfer predict`` loads one, with the backbone's default options."""
    import torch

    from llfer.registry import import_members

    import_members("llfer.models")  # registers its members
    from llfer.predict import Classifier
    from llfer.registry import BACKBONES

    opts = dict(BACKBONES.entry(backbone).defaults)
    opts.update(num_classes=len(CLASSES), in_channels=1)
    torch.manual_seed(seed)
    model = BACKBONES.build(backbone, **opts).eval()
    return Classifier(model=model, config={"backbone": backbone, "options": opts}, path=Path(backbone),
                      classes=CLASSES, in_channels=1, input_size=int(opts.get("input_size", 48)), preprocessors=[])


def timed(fn, x: np.ndarray, seconds: float) -> dict:
    fn(x)
    fn(x)  # warm-up: allocator, oneDNN primitive cache, ORT graph optimisation
    n, calls, t0 = 0, 0, time.perf_counter()
    while True:
        fn(x)
        n += len(x)
        calls += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and calls >= 3:
            break
    return {"faces_per_second": round(n / dt, 1), "ms_per_call": round(1000 * dt / calls, 3), "calls": calls}


def bench_model(name: str, modules, clf, batches: list[int], seconds: float, threads: int, device: str,
                runtimes: list[str], tmp: Path) -> list[dict]:
    import torch

    from llfer.export import onnx_runner, parity, write_onnx

    module, reference = modules
    s = clf.input_size
    rng = np.random.default_rng(0)
    xs = {b: rng.random((b, 1, s, s), dtype=np.float32) for b in batches}
    dev = torch.device(device)
    rows = []
    params = sum(p.numel() for p in reference.parameters())
    mod_dev = reference.to(dev)

    def torch_fn(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            y = mod_dev(torch.from_numpy(x).to(dev))
            return y.float().cpu().numpy()

    check = None
    ort_fn = None
    if "onnxruntime" in runtimes:
        reference.cpu()
        path = tmp / f"{name.replace('+', '_')}.onnx"
        write_onnx(module, torch.from_numpy(xs[batches[0]][:1].repeat(2, 0)), path)
        ort_fn, rt = onnx_runner(path, threads=threads)
        check = {k: v for k, v in parity(reference, ort_fn, rng.random((8, 1, s, s), dtype=np.float32), batch1=2).items()
                 if k.startswith("max_abs")}
        check["runtime"] = rt
        mod_dev = reference.to(dev)
    for b in batches:
        row = {"model": name, "input_size": s, "params": int(params), "batch": b}
        if "torch" in runtimes:
            row["torch"] = timed(torch_fn, xs[b], seconds)
        if ort_fn is not None:
            row["onnxruntime"] = timed(ort_fn, xs[b], seconds)
            row["onnx_check"] = check
        if "torch" in row and "onnxruntime" in row:
            row["ort_over_torch"] = round(row["onnxruntime"]["faces_per_second"] / row["torch"]["faces_per_second"], 2)
        rows.append(row)
        t = row.get("torch", {}).get("faces_per_second", "-")
        o = row.get("onnxruntime", {}).get("faces_per_second", "-")
        print(f"{name:<28} {s:>3}px batch {b:>3}: torch {t:>9} faces/s   onnxruntime {o:>9} faces/s", flush=True)
    return rows


def bench_predict(enhancers: list[str], seconds: float, device: str) -> list[dict]:
    """Whole pictures through the predictor (detection + classification), per enhancer in front."""
    from llfer.data.synthetic import render_faces
    from llfer.predict import Predictor
    from llfer.registry import ENHANCERS

    from llfer.registry import import_members

    import_members("llfer.enhance")  # registers its members

    faces, _ = render_faces([3, 6], [1, 2], [1, 2], size=96)
    rng = np.random.default_rng(0)
    import cv2

    scene = cv2.GaussianBlur(np.clip(rng.normal(100, 25, (480, 640)), 0, 255).astype(np.uint8), (9, 9), 3)
    scene[100:196, 120:216] = faces[0]
    scene[250:346, 400:496] = faces[1]
    clf = classifier("mini_xception")
    rows = []
    for name in enhancers:
        if name == "none":
            enh = None
        elif getattr(ENHANCERS.get(name), "learned", False):
            enh = ENHANCERS.build(name, preset="cpu")
        else:
            enh = ENHANCERS.build(name)
        pred = Predictor(clf, enh, detector="haar", device=device)

        def one(_x, pred=pred):
            _, boxes, f = pred.faces(scene)
            pred.classify(f)
            return boxes

        r = timed(one, np.zeros(1), seconds)
        found = len(one(None))
        rows.append({"enhancer": name, "picture": [640, 480], "faces_found": found,
                     "pictures_per_second": r["faces_per_second"], "ms_per_picture": r["ms_per_call"]})
        print(f"predict 640x480, enhancer {name:<10}: {r['faces_per_second']:>7} pictures/s "
              f"({r['ms_per_call']} ms, {found} faces)", flush=True)
    return rows


def markdown(res: dict) -> str:
    out = [f"# Faces per second ({res['machine']['cpu']}, {res['threads']} threads, {res['device']})", "",
           f"Command: `{res['command']}`  ", f"torch {res['versions']['torch']}, "
           f"onnxruntime {res['versions'].get('onnxruntime')}; 1-min load average {res['loadavg_before']} -> "
           f"{res['loadavg_after']} (shared machine).", "",
           "| model | input | params | batch | PyTorch faces/s | ONNX Runtime faces/s | ORT / PyTorch | export max abs diff |",
           "|---|---|---|---|---|---|---|---|"]
    for r in res["models"]:
        t = r.get("torch", {}).get("faces_per_second", "")
        o = r.get("onnxruntime", {}).get("faces_per_second", "")
        d = r.get("onnx_check", {})
        diff = f"{max(d['max_abs_diff_logits'], d['max_abs_diff_logits_batch1']):.1e}" if d else ""
        out.append(f"| {r['model']} | {r['input_size']} px | {r['params'] / 1e6:.2f} M | {r['batch']} | {t} | {o} | "
                   f"{r.get('ort_over_torch', '')} | {diff} |")
    if res.get("predict"):
        out += ["", "Whole pictures (`llfer predict`: Haar detection, crop, mini-Xception), 640 x 480, PyTorch:", "",
                "| enhancer in front | pictures/s | ms / picture | faces found |", "|---|---|---|---|"]
        out += [f"| {r['enhancer']} | {r['pictures_per_second']} | {r['ms_per_picture']} | {r['faces_found']} |"
                for r in res["predict"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=None, help="default: every registered backbone")
    ap.add_argument("--enhancers", nargs="*", default=None, help="learned enhancers in front (default: all)")
    ap.add_argument("--enhancer-backbones", nargs="+", default=["mini_xception"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of PyTorch, ONNX Runtime and OpenCV (default 1: on a shared machine more threads "
                         "than free cores make PyTorch's OpenMP workers wait on each other)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="PyTorch device (ORT runs on the CPU)")
    ap.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"])
    ap.add_argument("--predict-enhancers", nargs="*", default=["none", "he", "gain", "zerodce"])
    ap.add_argument("--no-predict", action="store_true", help="skip the whole-picture rows")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "fps.json"))
    args = ap.parse_args(argv)

    import torch

    from llfer.registry import import_members

    import_members("llfer.enhance")  # registers its members
    import_members("llfer.models")
    from llfer.export import export_modules
    from llfer.registry import BACKBONES, ENHANCERS

    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if "onnxruntime" in args.runtimes:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("onnxruntime is not installed (pip install 'llfer[export]'): PyTorch only", file=sys.stderr)
            args.runtimes = [r for r in args.runtimes if r != "onnxruntime"]
    backbones = args.backbones or BACKBONES.names()
    learned = [n for n in ENHANCERS.names() if getattr(ENHANCERS.get(n), "learned", False)]
    enhancers = learned if args.enhancers is None else args.enhancers
    la0 = loadavg()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for b in backbones:
            clf = classifier(b)
            rows += bench_model(b, export_modules(clf), clf, args.batches, args.seconds, args.threads, args.device,
                                args.runtimes, Path(td))
        for eb in args.enhancer_backbones:
            for e in enhancers:
                torch.manual_seed(0)
                clf = classifier(eb)
                enh = ENHANCERS.build(e, preset="cpu")
                rows += bench_model(f"{e}+{eb}", export_modules(clf, enh), clf, args.batches, args.seconds,
                                    args.threads, args.device, args.runtimes, Path(td))
    pred_rows = [] if args.no_predict else bench_predict(args.predict_enhancers, args.seconds, args.device)
    try:
        import onnxruntime as ort

        ort_v = ort.__version__
    except ImportError:
        ort_v = None
    res = {"command": "python benchmarks/bench_fps.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "device": args.device, "threads": args.threads,
           "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                       "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None},
           "versions": {"torch": torch.__version__, "onnxruntime": ort_v},
           "loadavg_before": la0, "loadavg_after": loadavg(), "models": rows, "predict": pred_rows}
    save_results(Path(args.out), res, markdown(res))
    return 0


def save_results(out: Path, res: dict, table: str) -> None:
    """``out`` (JSON) and the table beside it (``.md``), both written atomically."""
    from llfer.io import write_json, write_text

    write_json(out, res)
    write_text(out.with_suffix(".md"), table)
    print(f"-> {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    raise SystemExit(main())
