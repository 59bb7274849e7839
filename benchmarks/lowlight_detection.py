"""Benchmark: how often ``llfer predict`` finds real faces in darkened pictures, and how often it then names
their expression, with and without an enhancer in front.

Usage::

    .venv/bin/python benchmarks/lowlight_detection.py --model DIR (--prepared DIR | --source FILE)
        [--faces 200] [--enhancers none he clahe agc retinex gain] [--learned NAME=DIR ...]
        [--face-size 96] [--seed 0] [--out benchmarks/results/lowlight_detection.json]

Data: the test split of a prepared FER dataset (``llfer prepare``; ``--prepared``) or a FER2013 source read by
the project's reader (``--source``, default ``$LLFER_DATA_DIR/fer2013.zip``).  There are no whole-scene photos
with expression labels here, so ``--faces`` real test faces (a seeded sample, every class) are upscaled to
``--face-size`` px (bicubic) and pasted two per 320 x 240 picture at known places, on a blurred-noise
background; the pictures are then darkened as the ``degrade`` stage does:

* ``dark_pil``: PIL ``ImageEnhance.Brightness(0.1)`` ([mirnet-fer]);
* ``dark_gamma``: ``beta * (alpha * I) ** gamma`` per picture ([ll-fer] eq. 14, the ``degrade.dark_gamma``
  defaults), seeded by picture id.

For every (darkening, enhancer): the predictor (Haar cascade, default settings of ``llfer predict``) runs on
each picture.  A face counts as **detected** when a box's centre lies inside its pasted square and the box is
at least half as wide; other boxes are **false detections**.  **accuracy | detected** is the share of detected
faces whose top class is the true label; **end to end** is correct faces / all faces (a missed face is
wrong); **accuracy, true boxes** classifies the pasted squares themselves (no detector): the classifier's own
loss in the dark, with the enhancer in front.  The classifier is ``--model`` (trained on the same dataset's
training split; its classes are matched by name).
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
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_fps import loadavg, save_results  # noqa: E402

SCENE = (240, 320)


def places(face: int) -> list[tuple[int, int]]:
    h, w = SCENE
    return [(w // 4 - face // 2, h // 2 - face // 2 - 20), (3 * w // 4 - face // 2, h // 2 - face // 2 + 20)]


def load_faces(args) -> tuple[np.ndarray, list[str]]:
    """uint8 test faces and their class names."""
    if args.prepared:
        from llfer.data.store import read_dataset

        ds = read_dataset(Path(args.prepared))
        idx = ds.split_indices("test")
        return np.asarray(ds.images[idx]), [ds.classes[k] for k in ds.labels[idx]]
    from llfer.registry import DATASETS

    from llfer.registry import import_members

    import_members("llfer.data.fer")  # registers its members

    src = args.source or (Path(os.environ["LLFER_DATA_DIR"]) / "fer2013.zip" if os.environ.get("LLFER_DATA_DIR") else None)
    if src is None:
        raise SystemExit("give --prepared DIR or --source FILE (or set LLFER_DATA_DIR)")
    prep = DATASETS.get("fer2013")(src)
    test = np.flatnonzero(prep.index["split"].to_numpy() == "test")
    return np.asarray(prep.images[test]), [prep.classes[k] for k in prep.index["label"].to_numpy()[test]]


def make_scenes(faces: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    import cv2

    pl = places(size)
    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(0, len(faces), 2):
        bg = cv2.GaussianBlur(np.clip(rng.normal(110, 30, SCENE), 0, 255).astype(np.uint8), (9, 9), 3)
        for f, (x, y) in zip(faces[i : i + 2], pl):
            g = f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
            bg[y : y + size, x : x + size] = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
        scenes.append(bg)
    return np.stack(scenes), pl


def inside(box, place, size) -> bool:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    return place[0] <= cx < place[0] + size and place[1] <= cy < place[1] + size and w >= size / 2


def evaluate(pred, scenes: np.ndarray, labels: list[str], pl, size: int) -> dict:
    n = len(labels)
    detected = correct_det = false_det = 0
    true_crops = []
    t0 = time.perf_counter()
    for s, scene in enumerate(scenes):
        enhanced, boxes, faces = pred.faces(scene)
        probs = pred.classify(faces)
        for j, (x, y) in enumerate(pl):
            k = 2 * s + j
            if k >= n:
                break
            true_crops.append(enhanced[y : y + size, x : x + size])
            hit = [i for i, b in enumerate(boxes) if inside(b, (x, y), size)]
            if hit:
                detected += 1
                correct_det += pred.clf.classes[int(np.argmax(probs[hit[0]]))] == labels[k]
        false_det += sum(not any(inside(b, p, size) for p in pl[: min(2, n - 2 * s)]) for b in boxes)
    secs = time.perf_counter() - t0
    p_true = pred.classify(pred.prepare(true_crops))
    acc_true = float(np.mean([pred.clf.classes[int(np.argmax(p))] == lab for p, lab in zip(p_true, labels)]))
    return {"faces": n, "detected": detected, "detection_rate": round(detected / n, 4),
            "false_detections": int(false_det),
            "accuracy_given_detected": round(correct_det / detected, 4) if detected else None,
            "end_to_end_accuracy": round(correct_det / n, 4), "accuracy_true_boxes": round(acc_true, 4),
            "seconds": round(secs, 2)}


def markdown(res: dict) -> str:
    out = [f"# Faces found and expressions named in the dark ({res['dataset']}, {res['faces']} test faces)", "",
           f"Command: `{res['command']}`  ", f"Classifier: {res['model']} ({res['backbone']}, test accuracy on "
           f"the dataset's own crops: {res['clean_crop_accuracy']}). Faces upscaled to {res['face_size']} px, two per "
           "320 x 240 picture; Haar cascade as `llfer predict` runs it.", "",
           "| darkening | enhancer | detection rate | false detections | accuracy given detected | end-to-end accuracy | accuracy on true boxes |",
           "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        a = r["accuracy_given_detected"]
        out.append(f"| {r['darkening']} | {r['enhancer']} | {r['detection_rate']:.3f} | {r['false_detections']} | "
                   f"{'' if a is None else f'{a:.3f}'} | {r['end_to_end_accuracy']:.3f} | {r['accuracy_true_boxes']:.3f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="classifier model directory")
    ap.add_argument("--prepared", help="prepared dataset directory (its test split is used)")
    ap.add_argument("--source", help="FER2013 archive / folder / CSV (default $LLFER_DATA_DIR/fer2013.zip)")
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--face-size", type=int, default=96)
    ap.add_argument("--enhancers", nargs="+", default=["none", "he", "clahe", "agc", "retinex", "gain"])
    ap.add_argument("--learned", nargs="*", default=[], metavar="NAME=DIR", help="trained learned enhancers")
    ap.add_argument("--darkenings", nargs="+", default=["clean", "dark_pil", "dark_gamma"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "lowlight_detection.json"))
    args = ap.parse_args(argv)

    import cv2
    import torch

    from llfer.degrade import dark_gamma, dark_pil
    from llfer.predict import Predictor, load_enhancer, load_model

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    la0 = loadavg()
    clf = load_model(args.model)
    images, labels = load_faces(args)
    unknown = sorted(set(labels) - set(clf.classes))
    if unknown:
        raise SystemExit(f"{args.model}: classes {clf.classes} lack {unknown}")
    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(images), min(args.faces, len(images)), replace=False))
    faces, labels = images[pick], [labels[i] for i in pick]
    plain = Predictor(clf, None, detector="none")
    crop_acc = float(np.mean([clf.classes[int(np.argmax(p))] == lab
                              for p, lab in zip(plain.classify(plain.prepare(list(faces))), labels)]))
    scenes, pl = make_scenes(faces, args.face_size, args.seed)
    ids = [f"scene{i:05d}" for i in range(len(scenes))]
    dark = {"clean": scenes, "dark_pil": dark_pil(scenes, ids=ids, seed=args.seed, factor=0.1),
            "dark_gamma": dark_gamma(scenes, ids=ids, seed=args.seed)}
    enhancers = [(e, None if e == "none" else load_enhancer(e)) for e in args.enhancers]
    enhancers += [(kv.split("=", 1)[0], load_enhancer(kv.split("=", 1)[1])) for kv in args.learned]
    rows = []
    for d in args.darkenings:
        for name, enh in enhancers:
            r = evaluate(Predictor(clf, enh), dark[d], labels, pl, args.face_size)
            rows.append({"darkening": d, "enhancer": name, **r})
            print(f"{d:<10} {name:<10} detected {r['detection_rate']:.3f}  false {r['false_detections']:>3}  "
                  f"acc|det {r['accuracy_given_detected']}  end-to-end {r['end_to_end_accuracy']:.3f}  "
                  f"true boxes {r['accuracy_true_boxes']:.3f}  ({r['seconds']} s)", flush=True)
    res = {"command": "python benchmarks/lowlight_detection.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "dataset": args.prepared or str(args.source or "$LLFER_DATA_DIR/fer2013.zip"), "model": str(args.model),
           "backbone": clf.backbone, "faces": len(labels), "face_size": args.face_size,
           "clean_crop_accuracy": round(crop_acc, 4), "rows": rows}
    res.update(threads=args.threads, loadavg_before=la0, loadavg_after=loadavg())
    save_results(Path(args.out), res, markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
